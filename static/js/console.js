// The live queue: polls the JSON endpoint for sessions that arrived since the newest one shown
// and puts them on top, without reloading the page. Polling (not server-sent events) because it
// survives proxies, sleeping laptops and server restarts without any reconnect logic.
(function () {
  "use strict";
  var table = document.getElementById("queue");
  if (!table || !table.dataset.poll) { return; }
  var body = document.getElementById("queue-rows");
  var empty = document.getElementById("queue-empty");
  var since = table.dataset.since || new Date().toISOString().slice(0, 19) + "Z";
  var seen = {};
  Array.prototype.forEach.call(body.rows, function (row) { seen[row.dataset.id] = true; });
  var INTERVAL_MS = 3000;

  function cell(text, className) {
    var td = document.createElement("td");
    td.textContent = text;
    if (className) { td.className = className; }
    return td;
  }

  function number(value, digits, unit) {
    return value === null || value === undefined ? "—" : value.toFixed(digits) + (unit || "");
  }

  function visitorCell(s) {
    var td = document.createElement("td");
    var span = document.createElement(s.outcome === "greeted" ? "strong" : "span");
    span.textContent = s.outcome === "greeted" ? (s.name || "—") : table.dataset.labelUnknown;
    if (s.outcome !== "greeted") { span.className = "unknown-visitor"; }
    td.appendChild(span);
    return td;
  }

  function statusCell(s) {
    var td = document.createElement("td");
    var badge = document.createElement("span");
    badge.className = "badge status-" + s.status;
    badge.textContent = s.status_label;
    td.appendChild(badge);
    return td;
  }

  function openCell(s) {
    var td = document.createElement("td");
    var link = document.createElement("a");
    link.className = "button";
    link.href = s.url;
    link.textContent = table.dataset.labelOpen;
    td.appendChild(link);
    return td;
  }

  function rowFor(s) {
    var tr = document.createElement("tr");
    tr.dataset.id = s.id;
    tr.className = "status-row-" + s.status + " fresh";
    tr.appendChild(cell(s.received_local));
    tr.appendChild(cell(s.device + (s.site ? " · " + s.site : "")));
    tr.appendChild(visitorCell(s));
    tr.appendChild(cell(number(s.distance, 2), "num"));
    tr.appendChild(cell(number(s.margin, 2), "num"));
    tr.appendChild(cell(s.liveness_label));
    tr.appendChild(cell(number(s.time_to_greet, 1, " s"), "num"));
    tr.appendChild(statusCell(s));
    tr.appendChild(openCell(s));
    return tr;
  }

  function show(sessions) {
    // sessions come oldest first: each new one goes on top, so the newest ends up first
    sessions.forEach(function (s) {
      if (s.received_at > since) { since = s.received_at; }
      if (seen[s.id]) { return; }
      seen[s.id] = true;
      body.insertBefore(rowFor(s), body.firstChild);
    });
    if (body.rows.length && empty) { empty.hidden = true; }
  }

  // Rows still pending on this screen: their status is re-read on every poll.
  function pendingIds() {
    return Array.prototype.filter.call(body.rows, function (row) {
      return row.className.indexOf("status-row-pending") >= 0;
    }).slice(0, 100).map(function (row) { return row.dataset.id; });
  }

  function updateStatuses(statuses) {
    Array.prototype.forEach.call(body.rows, function (row) {
      var now = statuses[row.dataset.id];
      if (!now || row.className.indexOf("status-row-" + now.status) >= 0) { return; }
      row.className = "status-row-" + now.status;
      var badge = row.querySelector(".badge");
      badge.className = "badge status-" + now.status;
      badge.textContent = now.status_label;
    });
  }

  function poll() {
    var url = table.dataset.poll + (table.dataset.poll.indexOf("?") < 0 ? "?" : "&") +
      "since=" + encodeURIComponent(since) + "&watch=" + encodeURIComponent(pendingIds().join(","));
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); }   // signed out: to the login
        if (response.redirected || !response.ok) { throw new Error("poll " + response.status); }
        return response.json();
      })
      .then(function (data) { show(data.sessions); updateStatuses(data.statuses || {}); })
      .catch(function () { /* a missed poll is retried on the next tick */ })
      .then(function () { window.setTimeout(poll, INTERVAL_MS); });
  }

  window.setTimeout(poll, INTERVAL_MS);
})();
