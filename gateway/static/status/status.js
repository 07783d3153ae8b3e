// The status page: polls /status/api/summary (with the token from the form at the top)
// and shows every deployment's state, replicas, traffic and latency, with small charts
// of the last five minutes (uPlot, vendored).
(function () {
  "use strict";
  var auth = window.mlgateAuth;
  var POLL_MS = 2000;
  var plots = {};

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    return node;
  }

  function fixed(value, digits) {
    return value === null || value === undefined ? "–" : value.toFixed(digits);
  }

  function percent(value) {
    return value === null || value === undefined ? "–" : (value * 100).toFixed(2) + " %";
  }

  function row(d) {
    var tr = el("tr");
    tr.setAttribute("data-deployment", d.id);
    tr.appendChild(el("td", "id", d.id));
    tr.appendChild(el("td", "model", d.model_name + " " + d.model_version));
    var state = el("td", "state");
    state.appendChild(el("span", "state-" + d.state, d.state));
    if (d.reason) {
      state.appendChild(el("span", "reason", d.reason));
    }
    tr.appendChild(state);
    var replicas = el("td", "replicas", d.replicas.available + " / " + d.replicas.desired);
    if (d.replicas.available === 0 && d.replicas.desired > 0) {
      replicas.classList.add("bad");
    }
    tr.appendChild(replicas);
    tr.appendChild(el("td", "in-flight", String(d.in_flight)));
    var m = d.last_minute;
    tr.appendChild(el("td", "rate", fixed(m.rate, 2)));
    var errors = el("td", "errors", m.errors + " (" + percent(m.error_ratio) + ")");
    if (m.errors > 0) {
      errors.classList.add("bad");
    }
    tr.appendChild(errors);
    tr.appendChild(el("td", "p50", fixed(m.p50_ms, 2)));
    tr.appendChild(el("td", "p90", fixed(m.p90_ms, 2)));
    tr.appendChild(el("td", "p99", fixed(m.p99_ms, 2)));
    return tr;
  }

  function chart(title, series, data, target) {
    var opts = {
      title: title, width: 320, height: 150, legend: { show: true, live: false },
      scales: { x: { time: true } },
      series: [{}].concat(series),
      axes: [{ size: 30 }, { size: 50 }]
    };
    return new uPlot(opts, data, target);
  }

  function charts(d) {
    var s = d.series;
    var traffic = [s.time, s.rate, s.rate.map(function (r, i) {
      return s.error_ratio[i] === null ? 0 : r * s.error_ratio[i];
    })];
    var latency = [s.time, s.p50_ms, s.p99_ms];
    var entry = plots[d.id];
    if (!entry) {
      var card = el("div", "card");
      card.setAttribute("data-deployment", d.id);
      card.appendChild(el("h3", null, d.id));
      var box = el("div", "plots");
      card.appendChild(box);
      document.getElementById("charts").appendChild(card);
      entry = plots[d.id] = {
        card: card,
        traffic: chart("requests/s", [
          { label: "all", stroke: "#2a6db0", fill: "rgba(42,109,176,0.12)" },
          { label: "5xx", stroke: "#c0392b" }], traffic, box),
        latency: chart("latency ms", [
          { label: "p50", stroke: "#27ae60", spanGaps: true, points: { show: true, size: 4 } },
          { label: "p99", stroke: "#8e44ad", spanGaps: true, points: { show: true, size: 4 } }],
          latency, box)
      };
    } else {
      entry.traffic.setData(traffic);
      entry.latency.setData(latency);
    }
  }

  function show(doc) {
    var body = document.querySelector("#deployments tbody");
    body.textContent = "";
    var seen = {};
    doc.deployments.forEach(function (d) {
      body.appendChild(row(d));
      charts(d);
      seen[d.id] = true;
    });
    Object.keys(plots).forEach(function (id) {
      if (!seen[id]) {
        plots[id].traffic.destroy();
        plots[id].latency.destroy();
        plots[id].card.remove();
        delete plots[id];
      }
    });
    document.getElementById("empty").textContent =
      doc.deployments.length ? "" : "No model deployments yet.";
    var st = doc.storage;
    document.getElementById("storage").textContent = st ?
      "Records: " + sum(st.written) + " stored, " + sum(st.dropped) + " dropped; spool " +
      st.spool_bytes + " bytes in " + st.spool_segments + " segment(s); " +
      st.upload_failures + " failed upload(s)" : "";
    document.getElementById("updated").textContent =
      "updated " + new Date(doc.time * 1000).toLocaleTimeString();
  }

  function sum(perKind) {
    return Object.keys(perKind || {}).reduce(function (n, k) { return n + perKind[k]; }, 0);
  }

  function poll() {
    if (!auth.get()) {
      document.getElementById("empty").textContent = "Give a token above to see the deployments.";
      return;
    }
    auth.fetchJson("api/summary").then(function (r) {
      if (!r.ok) {
        auth.message(r.status + ": " + ((r.body && r.body.message) || "no data"), true);
        return;
      }
      auth.message("token accepted");
      show(r.body);
    }).catch(function (err) {
      auth.message("cannot reach the gateway: " + err, true);
    });
  }

  window.mlgateStatus = { el: el };  // for the page's other script (quality.js)

  window.addEventListener("load", function () {
    auth.mount("mlgate-token");
    auth.onChange(poll);
    poll();
    window.setInterval(poll, POLL_MS);
  });
})();
