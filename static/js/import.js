// The import job page: poll the job's progress until it ends, then reload to show the summary.
(function () {
  "use strict";
  var job = document.getElementById("job");
  if (!job) { return; }
  var url = job.getAttribute("data-progress-url");
  var POLL_MS = 1000;

  function show(state) {
    var bar = document.getElementById("job-progress");
    var processed = document.getElementById("job-processed");
    var total = document.getElementById("job-total");
    if (processed) { processed.textContent = state.processed; }
    if (total) { total.textContent = state.total; }
    if (bar) {
      var percent = state.total ? Math.round(100 * state.processed / state.total) : 0;
      bar.setAttribute("aria-valuenow", state.processed);
      bar.setAttribute("aria-valuemax", state.total);
      bar.firstElementChild.style.width = percent + "%";
    }
  }

  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (state) {
        show(state);
        if (state.status === "done" || state.status === "failed") {
          window.location.reload();
        } else {
          window.setTimeout(poll, POLL_MS);
        }
      })
      .catch(function () { window.setTimeout(poll, POLL_MS * 3); });  // server busy or restarting
  }

  window.setTimeout(poll, POLL_MS);
})();
