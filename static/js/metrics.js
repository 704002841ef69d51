// The metrics page (/metrics/): fetches /api/v1/federation/metrics/series?window=... (staff, the session's
// cookie) and draws it with the vendored uPlot (static/vendor/uplot/). Config from the page's json_script
// "metrics-config": {api, window, refresh_seconds}. No inline script or style: the page's CSP allows only
// our own static files.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("metrics-config").textContent);
  const status = document.getElementById("metrics-status");
  const alertsList = document.getElementById("metrics-alerts");
  const operationSelect = document.getElementById("latency-operation");
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#6b7280"];
  const TOP_REMOTES = 8;
  const charts = {};
  let latest = null;

  function boxWidth(box) {
    return Math.max(200, Math.floor(box.getBoundingClientRect().width));
  }

  function draw(id, seriesOpts, data, axisLabel) {
    const box = document.getElementById(id);
    if (charts[id]) {
      charts[id].destroy();
    }
    const opts = {
      width: boxWidth(box),
      height: 220,
      series: [{}].concat(seriesOpts),
      axes: [{}, { label: axisLabel, size: 56 }],
      scales: { x: { time: true } },
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
    };
    charts[id] = new uPlot(opts, data, box);
  }

  function line(label, index, extra) {
    // Points too: a value between two empty periods (a lone call, a lone decision) is no line at all.
    return Object.assign(
      { label: label, stroke: COLORS[index % COLORS.length], width: 1.5, spanGaps: false, points: { show: true, size: 4 } },
      extra || {}
    );
  }

  function shortName(remote) {
    const parts = remote.split("/");
    return parts.length > 2 ? parts.slice(1).join("/") : remote;
  }

  function drawTraffic(doc) {
    const remotes = Object.keys(doc.by_remote);
    const shown = remotes.slice(0, TOP_REMOTES);
    const data = [doc.times];
    const series = [];
    shown.forEach(function (remote, i) {
      data.push(doc.by_remote[remote].calls);
      series.push(line(shortName(remote), i));
    });
    if (remotes.length > TOP_REMOTES) {
      const others = doc.times.map(function (_, t) {
        return remotes.slice(TOP_REMOTES).reduce(function (sum, r) { return sum + doc.by_remote[r].calls[t]; }, 0);
      });
      data.push(others);
      series.push(line("others", TOP_REMOTES));
    }
    if (!series.length) {
      data.push(doc.calls);
      series.push(line("calls", 0));
    }
    draw("chart-traffic", series, data, "calls");
  }

  function drawErrors(doc) {
    const data = [doc.times, doc.error_rate];
    const series = [line("all remotes", 1, { width: 2 })];
    Object.keys(doc.by_remote)
      .filter(function (r) { return doc.by_remote[r].failed.some(function (n) { return n > 0; }); })
      .slice(0, TOP_REMOTES - 1)
      .forEach(function (remote, i) {
        data.push(doc.by_remote[remote].error_rate);
        series.push(line(shortName(remote), i + 2));
      });
    draw("chart-errors", series, data, "%");
  }

  function drawLatency(doc) {
    const operations = Object.keys(doc.latency_ms);
    // Unless the reader picked one, start on the busiest operation with timed calls (not merely the first name).
    function timed(op) {
      return doc.latency_ms[op].p50.filter(function (v) { return v !== null; }).length
        ? doc.latency_ms[op].calls.reduce(function (a, b) { return a + b; }, 0) : 0;
    }
    const busiest = operations.slice().sort(function (a, b) { return timed(b) - timed(a); })[0];
    const chosen = operations.indexOf(operationSelect.value) >= 0 ? operationSelect.value : busiest;
    operationSelect.replaceChildren();
    (operations.length ? operations : ["(no calls)"]).forEach(function (op) {
      const option = document.createElement("option");
      option.value = op;
      option.textContent = op;
      option.selected = op === chosen;
      operationSelect.appendChild(option);
    });
    const empty = doc.times.map(function () { return null; });
    const latency = doc.latency_ms[chosen] || { p50: empty, p95: empty, p99: empty };
    draw("chart-latency", [line("p50", 0), line("p95", 3), line("p99", 1)],
      [doc.times, latency.p50, latency.p95, latency.p99], "ms");
  }

  function drawRequests(doc) {
    const r = doc.requests;
    draw("chart-queue", [line("waiting", 0, { width: 2 }), line("arrived", 2)], [doc.times, r.queue_depth, r.arrived], "requests");
    draw("chart-approval", [line("approved", 2)], [doc.times, r.approval_rate], "%");
    draw("chart-decision", [line("mean wait", 4)], [doc.times, r.decision_seconds], "s");
  }

  function showAlerts(alerts) {
    // The page's list shows the last day's alerts as rendered; a refresh adds those that fired since.
    const known = new Set(Array.from(alertsList.querySelectorAll("li[data-id]")).map(function (li) { return li.dataset.id; }));
    alerts.forEach(function (a) {
      if (known.has(String(a.id))) {
        return;
      }
      const li = document.createElement("li");
      li.dataset.id = String(a.id);
      li.className = "alert-firing";
      const badge = document.createElement("span");
      badge.className = "status status-failed";
      badge.textContent = "firing";
      const kind = document.createElement("code");
      kind.textContent = a.kind;
      li.append(badge, " ", kind, " " + a.summary);
      const placeholder = alertsList.querySelector("li.muted");
      if (placeholder) {
        placeholder.remove();
      }
      alertsList.prepend(li);
    });
  }

  function render(doc) {
    latest = doc;
    drawTraffic(doc);
    drawErrors(doc);
    drawLatency(doc);
    drawRequests(doc);
    showAlerts(doc.alerts);
    const total = doc.calls.reduce(function (a, b) { return a + b; }, 0);
    status.textContent = total + " calls in the last " + doc.window + "; updated " + new Date().toLocaleTimeString();
  }

  function load() {
    fetch(config.api + "?window=" + encodeURIComponent(config.window), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("the series API answered " + response.status);
        }
        return response.json();
      })
      .then(render)
      .catch(function (error) {
        status.textContent = "Could not load the metrics: " + error.message;
      });
  }

  operationSelect.addEventListener("change", function () {
    if (latest) {
      drawLatency(latest);
    }
  });
  let resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () {
      Object.keys(charts).forEach(function (id) {
        charts[id].setSize({ width: boxWidth(document.getElementById(id)), height: 220 });
      });
    }, 150);
  });
  load();
  setInterval(load, (config.refresh_seconds || 30) * 1000);
})();
