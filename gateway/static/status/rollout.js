// The status page's canary rollouts: per ModelRoute with spec.analysis, where its rollout
// is (phase, step, failed checks, message), the weights of canary and stable over time
// (from the rollout's history), and every metric's verdict in the last judgement. Data from
// the management API's routes and /rollout endpoints (token from the form).
(function () {
  "use strict";
  var auth = window.mlgateAuth;
  var el = window.mlgateStatus.el;  // status.js, loaded first
  var POLL_MS = 2000;
  var cards = {};

  function seconds(iso) {
    return Date.parse(iso) / 1000;
  }

  // The history as a step line: one point per change, and one now (the weight holds).
  function weightSeries(doc, now) {
    var times = [], canary = [], stable = [];
    doc.history.forEach(function (h) {
      times.push(seconds(h.at));
      canary.push(h.canaryWeight);
      stable.push(100 - h.canaryWeight);
    });
    var last = times.length ? times[times.length - 1] : now;
    times.push(Math.max(now, last));
    canary.push(doc.canaryWeight);
    stable.push(100 - doc.canaryWeight);
    return [times, canary, stable];
  }

  function figure(name, value) {
    if (value === null || value === undefined) {
      return "–";
    }
    if (name === "error-rate") {
      return Number(value).toPrecision(3) + " %";
    }
    if (name === "quality-accuracy") {
      return Number(value).toPrecision(3) + " % wrong";
    }
    if (name.indexOf("latency-") === 0) {
      return (value * 1000).toPrecision(3) + " ms";
    }
    return Number(value).toPrecision(4);
  }

  function judgementTable(judged) {
    var table = el("table", "judgement");
    var head = el("tr");
    ["metric", "verdict", "canary", "stable", "bound", "samples"].forEach(function (h) {
      head.appendChild(el("th", null, h));
    });
    table.appendChild(head);
    (judged ? judged.metrics : []).forEach(function (m) {
      var tr = el("tr");
      tr.setAttribute("data-metric", m.name);
      tr.appendChild(el("td", null, m.name));
      var verdict = el("td", "verdict");
      verdict.appendChild(el("span", "verdict-" + m.verdict, m.verdict));
      verdict.title = m.reason;
      tr.appendChild(verdict);
      tr.appendChild(el("td", null, figure(m.name, m.canary)));
      tr.appendChild(el("td", null, figure(m.name, m.stable)));
      tr.appendChild(el("td", null, figure(m.name, m.bound)));
      tr.appendChild(el("td", null, m.samples.canary + " / " + m.samples.stable));
      table.appendChild(tr);
    });
    return table;
  }

  function show(doc, now) {
    var entry = cards[doc.routeId];
    var data = weightSeries(doc, now);
    if (!entry) {
      var card = el("div", "card rollout");
      card.setAttribute("data-rollout", doc.routeId);
      var title = el("h3");
      card.appendChild(title);
      var summary = el("p", "summary");
      card.appendChild(summary);
      var box = el("div", "plots");
      card.appendChild(box);
      var message = el("p", "note message");
      card.appendChild(message);
      var judged = el("div", "judged");
      card.appendChild(judged);
      document.getElementById("rollout-cards").appendChild(card);
      var stepped = uPlot.paths.stepped({ align: 1 });
      var plot = new uPlot({
        title: "weight % over time", width: 420, height: 170,
        legend: { show: true, live: false }, scales: { x: { time: true },
                                                       y: { range: [0, 100] } },
        series: [{}, { label: doc.canary + " (canary)", stroke: "#e67e22", width: 2,
                       paths: stepped },
                 { label: doc.stable + " (stable)", stroke: "#2a6db0", width: 2,
                   paths: stepped }],
        axes: [{ size: 30 }, { size: 40 }]
      }, data, box);
      entry = cards[doc.routeId] = { card: card, title: title, summary: summary,
                                     message: message, judged: judged, plot: plot };
    } else {
      entry.plot.setData(data);
    }
    entry.title.textContent = "route " + doc.routeId + ": " + doc.canary + " over " + doc.stable;
    entry.summary.textContent = "";
    entry.summary.appendChild(el("span", "phase phase-" + doc.phase, doc.phase));
    entry.summary.appendChild(document.createTextNode(
      " step " + doc.step + " of " + doc.steps + ", canary " + doc.canaryWeight +
      " %, failed checks " + doc.failedChecks + " of " + doc.threshold +
      (doc.deadline ? ", the step fails at " + new Date(doc.deadline).toLocaleTimeString() +
       " unless it passes" : "")));
    entry.message.textContent = doc.message;
    entry.judged.textContent = "";
    if (doc.lastJudgement) {
      entry.judged.appendChild(el("p", "note", "last judgement " +
        new Date(doc.lastJudgement.at).toLocaleTimeString() + ": " +
        doc.lastJudgement.verdict));
      entry.judged.appendChild(judgementTable(doc.lastJudgement));
    }
    entry.seen = true;
  }

  function poll() {
    if (!auth.get()) {
      return;
    }
    Object.keys(cards).forEach(function (k) { cards[k].seen = false; });
    auth.fetchJson("/api/v1/model/route").then(function (r) {
      if (!r.ok) {
        return [];
      }
      var now = Date.now() / 1000;
      return Promise.all(r.body.filter(function (route) {
        return route.status && route.status.rollout;
      }).map(function (route) {
        return auth.fetchJson("/api/v1/model/route/" + encodeURIComponent(route.id) +
                              "/rollout").then(function (d) {
          if (d.ok) {
            show(d.body, now);
          }
        });
      }));
    }).then(function () {
      Object.keys(cards).forEach(function (k) {
        if (!cards[k].seen) {
          cards[k].plot.destroy();
          cards[k].card.remove();
          delete cards[k];
        }
      });
      var none = !Object.keys(cards).length;
      document.getElementById("rollouts").hidden = none;
    });
  }

  window.addEventListener("load", function () {
    auth.onChange(poll);
    poll();
    window.setInterval(poll, POLL_MS);
  });
})();
