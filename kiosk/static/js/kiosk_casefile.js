// The case file on the kiosk screen: polls /casefile/state and fills the blink, notice and
// case-file panels; an on-screen keypad sends the last four phone digits for the details.
// Done ends the visit (POST /casefile/done); the idle screen's button opens the ID keypad
// (POST /casefile/type-id). Both keypads keep ⌫ in the same place: bottom left.
(function () {
  "use strict";
  var POLL_MS = 400;
  var lastSeq = -1;
  var digits = "";
  var $ = function (id) { return document.getElementById(id); };
  // Labels from the device catalogue (messages/device.json), put in the page by the screen.
  var TEXT = JSON.parse(document.getElementById("screen-text").textContent);
  var STATUS = TEXT.status;
  var ID_STATUS = TEXT.id;
  var idTyped = "";
  var idSent = false;     // the number was sent: its answer is due
  // The ID number's answers after which the field is emptied (the message says so, or sends
  // the visitor to the desk); after the others ("blink first", "look at the screen") the
  // number stays, for OK again.
  var ID_CLEARED = {invalid: true, no_match: true, too_many: true, offline: true};
  var FACTOR = {
    wrong: function (f) {
      var left = f.tries_left != null ? "\n" + TEXT.factor.tries_left.replace(/\{n\}/g, f.tries_left) : "";
      return TEXT.factor.wrong + left;
    },
    locked: function () { return TEXT.factor.locked; },
    wait: function () { return TEXT.factor.wait; },
    offline: function () { return TEXT.factor.offline; },
    invalid: function (f) { return f.message || ""; }
  };

  // textContent only, never innerHTML: names and case fields are data, not markup.
  function cell(row, text) { var td = document.createElement("td"); td.textContent = text || ""; row.appendChild(td); }

  function renderCases(cases) {
    var body = $("cf-cases").tBodies[0];
    body.textContent = "";
    cases.forEach(function (c) {
      var row = document.createElement("tr");
      [c.case_number, c.type, STATUS[c.status] || c.status, c.counter,
       c.when || ""].forEach(function (t) { cell(row, t); });
      body.appendChild(row);
    });
    $("cf-cases").hidden = cases.length === 0;
    $("cf-none").hidden = cases.length !== 0;
  }

  function renderDetails(details) {
    var box = $("cf-details");
    box.textContent = "";
    box.hidden = !details;
    (details || []).forEach(function (c) {
      var dl = document.createElement("dl");
      var dt = document.createElement("dt");
      dt.textContent = c.case_number + " · " + c.type;
      var dd = document.createElement("dd");
      dd.textContent = c.summary;
      dl.appendChild(dt); dl.appendChild(dd);
      box.appendChild(dl);
    });
  }

  function renderFactor(state) {
    var factor = state.factor;
    var box = $("cf-factor");
    box.hidden = !state.second_factor || !factor || factor.status === "ok";
    if (box.hidden) return;
    var message = FACTOR[factor.status];
    $("cf-message").textContent = message ? message(factor) : "";
    var locked = factor.status === "locked" || factor.status === "offline";
    Array.prototype.forEach.call($("cf-keypad").querySelectorAll("button"), function (b) { b.disabled = locked; });
  }

  function render(state) {
    if (state.seq === lastSeq) return;
    lastSeq = state.seq;
    $("cf-greeting").textContent = state.greeting;
    $("cf-blink").textContent = state.mode === "blink" ? state.prompt : "";
    $("cf-countdown").textContent = state.mode === "blink" && state.countdown != null ? String(state.countdown) : "";
    $("cf-feedback").textContent = state.mode === "blink" ? state.feedback : "";
    $("cf-attempt").textContent = state.hint || TEXT.label.blink_hint;
    $("cf-passed").textContent = state.mode === "passed" ? state.prompt : "";
    $("cf-notice").textContent = state.mode === "notice" || state.mode === "ticket" ? state.prompt : "";
    $("cf-notice-en").textContent = state.mode === "notice" || state.mode === "ticket" ? (state.english || "") : "";
    // the ticket: in the case file's head, or alone under a notice
    Array.prototype.forEach.call(document.querySelectorAll(".cf-ticket"), function (box) {
      var inline = box.classList.contains("cf-ticket-inline");
      box.hidden = !state.ticket || inline !== (state.mode === "casefile");
      box.querySelector(".cf-ticket-number").textContent = state.ticket ? state.ticket.number : "";
      box.querySelector(".cf-ticket-where").textContent = state.ticket ? state.ticket.where : "";
    });
    $("cf-title").textContent = state.name;
    $("cf-step").textContent = state.mode === "casefile" ? state.prompt : "";
    [$("cf-title"), $("cf-step")].forEach(function (el) { el.lang = state.language === "en" ? "en" : "zh-CN"; });
    $("id-prompt").textContent = state.mode === "identify" ? state.prompt : "";
    $("id-prompt-en").textContent = state.mode === "identify" ? (state.english || "") : "";
    $("id-message").textContent = state.mode === "identify" ? (ID_STATUS[state.id_status] || "") : "";
    renderIdAnswer(state);
    if (state.mode !== "casefile") setDigits("");     // the digits were emptied as they were sent
    renderCases(state.cases || []);
    renderDetails(state.details);
    renderFactor(state);
  }

  function setDigits(value) {
    digits = value;
    $("cf-digits").textContent = digits.replace(/./g, "●") + "____".slice(digits.length);
  }

  function post(url, body) {
    return fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                       body: JSON.stringify(body || {})})
      .then(function (r) { return r.json(); })
      .then(function (state) { if (state.seq !== undefined) render(state); });
  }

  function send() {
    if (digits.length !== 4) return;
    var typed = digits;
    setDigits("");
    post("/casefile/details", {phone_last4: typed});
  }

  function key(label, onPress, cls, pad) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    if (cls) b.className = cls;
    b.addEventListener("click", onPress);
    $(pad || "cf-keypad").appendChild(b);
  }

  // The ID number keypad: 1-9 / ⌫ 0 X / OK, for a visitor the camera did not recognise.
  var ID_LENGTH = 18;
  // The queue behind can read the screen: all but the last 4 characters typed are masked,
  // which still lets the visitor see the key they just pressed; the blanks count what is left.
  function maskedId(typed) {
    var shown = typed.replace(/./g, function (c, i) { return i < typed.length - 4 ? "●" : c; });
    var blanks = Array(Math.max(0, ID_LENGTH - shown.length) + 1).join("_");
    return (shown + blanks).replace(/^(.{6})(.{8})(.*)$/, "$1 $2 $3");
  }
  function setId(value) {
    idTyped = value;
    $("id-typed").textContent = maskedId(idTyped);
  }
  function sendId() {
    if (idTyped.length < 6) {     // nothing sent: say what is missing, never a silent key
      $("id-message").textContent = ID_STATUS.too_short;
      return;
    }
    idSent = true;
    post("/casefile/identify", {id_number: idTyped});
  }
  // Once per answer (a later state, a ticket arriving, must not empty what is typed anew).
  function renderIdAnswer(state) {
    if (state.mode !== "identify") {
      idSent = false;
      setId("");
    } else if (idSent && state.id_status && state.id_status !== "checking") {
      idSent = false;
      if (ID_CLEARED[state.id_status]) setId("");
    }
  }
  function typeId(d) { return function () { if (idTyped.length < ID_LENGTH) setId(idTyped + d); }; }
  "123456789".split("").forEach(function (d) { key(d, typeId(d), null, "id-keypad"); });
  key("⌫", function () { setId(idTyped.slice(0, -1)); }, "cf-back", "id-keypad");
  key("0", typeId("0"), null, "id-keypad");
  key("X", typeId("X"), null, "id-keypad");
  key(TEXT.label.ok, sendId, "cf-ok id-ok", "id-keypad");
  setId("");

  $("done").addEventListener("click", function () { setId(""); setDigits(""); post("/casefile/done"); });
  $("idle-id").addEventListener("click", function () { setId(""); post("/casefile/type-id"); });

  // A phone's 3×4 layout: 1 2 3 / 4 5 6 / 7 8 9 / ⌫ 0 OK
  "123456789".split("").forEach(function (d) {
    key(d, function () { if (digits.length < 4) setDigits(digits + d); });
  });
  key("⌫", function () { setDigits(digits.slice(0, -1)); }, "cf-back");
  key("0", function () { if (digits.length < 4) setDigits(digits + "0"); });
  key(TEXT.label.ok, send, "cf-ok");
  setDigits("");

  function poll() {
    fetch("/casefile/state", {cache: "no-store"})
      .then(function (r) { return r.json(); })
      .then(render)
      .catch(function () {})
      .then(function () { setTimeout(poll, POLL_MS); });
  }
  poll();
})();
