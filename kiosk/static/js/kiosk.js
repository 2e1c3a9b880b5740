// The kiosk screen: polls the agent's /state and shows idle, a greeting, or "please see a clerk".
(function () {
  "use strict";
  var POLL_MS = 300;
  var screen = document.getElementById("screen");
  var greeting = document.getElementById("greeting-text");
  var offline = document.getElementById("offline");
  var lastSeq = -1;

  function render(state) {
    offline.hidden = true;
    if (state.seq === lastSeq && screen.dataset.mode === state.mode) return;
    lastSeq = state.seq;
    screen.dataset.mode = state.mode;
    screen.className = "screen mode-" + state.mode;
    // textContent, never innerHTML: a name is data, not markup.
    greeting.textContent = state.mode === "greeting" ? state.text : "";
    greeting.lang = state.language === "en" ? "en" : "zh-CN";
  }

  // the demo's end (kiosk/demo.py): play the video again
  var replay = document.getElementById("replay");
  replay.addEventListener("click", function () {
    fetch("/demo/replay", {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
  });

  function poll() {
    fetch("/state", {cache: "no-store"})
      .then(function (r) { return r.json(); })
      .then(render)
      .catch(function () { offline.hidden = false; })
      .then(function () { setTimeout(poll, POLL_MS); });
  }
  poll();
})();
