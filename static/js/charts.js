// Small SVG charts for the dashboard, drawn from the JSON the page embeds. No library: the
// bureau's LAN is offline and two chart types do not justify a vendored charting package.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  // High-contrast colours that stay apart for the common colour-vision deficiencies.
  var PALETTE = ["#0b4f9c", "#d55e00", "#009e73", "#cc79a7", "#56b4e9", "#e69f00", "#000000"];

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  // Ticks for counts: whole numbers from 0 on a step of 1, 2 or 5 times a power of ten, at
  // most `most` steps, the last one at or above top (top 7: 0 2 4 6 8, never 0 1.4 2.8 ...).
  function countTicks(top, most) {
    top = Math.max(top, 1);
    var raw = top / most, power = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 5, 10].map(function (m) { return m * power; })
                            .filter(function (s) { return s >= raw; })[0];
    step = Math.max(1, Math.round(step));
    var ticks = [];
    for (var v = 0; v < top + step; v += step) { ticks.push(v); if (v >= top) { break; } }
    return ticks;
  }

  // Stacked bars: one bar per hour, one colour per device.
  function hourlyChart(container, perHour) {
    var devices = Object.keys(perHour);
    var totals = [];
    for (var h = 0; h < 24; h++) {
      totals.push(devices.reduce(function (sum, d) { return sum + perHour[d][h]; }, 0));
    }
    var ticks = countTicks(Math.max.apply(null, totals), 6), top = ticks[ticks.length - 1];
    var W = 960, H = 320, left = 48, right = 12, upper = 16, lower = 40;
    var plotW = W - left - right, plotH = H - upper - lower, barW = plotW / 24;
    var svg = el("svg", { viewBox: "0 0 " + W + " " + (H + 30 + 26 * Math.ceil(devices.length / 4)),
                          width: "100%", "font-size": "15", "font-family": "inherit" });
    ticks.forEach(function (value) {
      var y = upper + plotH - plotH * value / top;
      svg.appendChild(el("line", { x1: left, x2: W - right, y1: y, y2: y, stroke: "#bbb" }));
      svg.appendChild(el("text", { x: left - 6, y: y + 5, "text-anchor": "end", fill: "#111",
                                   "class": "y-tick" }, String(value)));
    });
    for (h = 0; h < 24; h++) {
      var base = upper + plotH;
      devices.forEach(function (d, k) {
        var height = plotH * perHour[d][h] / top;
        if (height > 0) {
          var rect = el("rect", { x: left + h * barW + 3, y: base - height, width: barW - 6,
                                  height: height, fill: PALETTE[k % PALETTE.length] });
          rect.appendChild(el("title", {}, d + " " + h + ":00 — " + perHour[d][h]));
          svg.appendChild(rect);
          base -= height;
        }
      });
      if (totals[h]) {
        svg.appendChild(el("text", { x: left + (h + 0.5) * barW, y: base - 4, "text-anchor": "middle",
                                     "font-weight": "700", fill: "#111" }, String(totals[h])));
      }
      if (h % 2 === 0) {
        svg.appendChild(el("text", { x: left + (h + 0.5) * barW, y: upper + plotH + 20,
                                     "text-anchor": "middle", fill: "#111" }, String(h)));
      }
    }
    svg.appendChild(el("line", { x1: left, x2: W - right, y1: upper + plotH, y2: upper + plotH,
                                 stroke: "#111", "stroke-width": 2 }));
    svg.appendChild(el("text", { x: left + plotW / 2, y: H, "text-anchor": "middle", fill: "#111" },
                       container.dataset.hourLabel || "Hour"));
    devices.forEach(function (d, k) {
      var x = left + (k % 4) * 220, y = H + 24 + 26 * Math.floor(k / 4);
      svg.appendChild(el("rect", { x: x, y: y - 14, width: 18, height: 18, fill: PALETTE[k % PALETTE.length] }));
      // a device's name as its admin wrote it: not a word to translate
      svg.appendChild(el("text", { x: x + 26, y: y, fill: "#111", translate: "no" }, d));
    });
    container.appendChild(svg);
  }

  // Horizontal bars for shares (0..1); an empty share is drawn as "—".
  function sharesChart(container, shares) {
    var W = 960, rowH = 44, labelW = 300;
    var svg = el("svg", { viewBox: "0 0 " + W + " " + (rowH * shares.length + 8), width: "100%",
                          "font-size": "16", "font-family": "inherit" });
    shares.forEach(function (share, i) {
      var y = 4 + i * rowH, barMax = W - labelW - 90;
      svg.appendChild(el("text", { x: 0, y: y + 25, fill: "#111", "font-weight": "700" }, share.label));
      svg.appendChild(el("rect", { x: labelW, y: y + 6, width: barMax, height: 26, fill: "#e3e8ef",
                                   stroke: "#555" }));
      if (share.value !== null) {
        svg.appendChild(el("rect", { x: labelW, y: y + 6, width: barMax * share.value, height: 26,
                                     fill: share.colour }));
      }
      svg.appendChild(el("text", { x: labelW + barMax + 10, y: y + 25, fill: "#111", "font-weight": "700" },
                         share.value === null ? "—" : (share.value * 100).toFixed(1) + "%"));
    });
    container.appendChild(svg);
  }

  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var hourly = document.getElementById("hourly-chart");
  if (hourly) { hourlyChart(hourly, data.per_hour); }
  var shares = document.getElementById("shares-chart");
  if (shares) {
    sharesChart(shares, [
      { label: shares.dataset.unknownLabel, value: data.unknown_share, colour: "#d55e00" },
      { label: shares.dataset.rejectedLabel, value: data.rejected_share, colour: "#a4161a" }
    ]);
  }
})();
