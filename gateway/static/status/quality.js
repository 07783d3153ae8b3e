// The status page's model quality: per deployment, its live quality over time (MAE, RMSE
// and bias, or accuracy) with labelled predictions; per ModelRoute of several targets, one
// line per variant. Data from the management API's quality endpoints (token from the form).
(function () {
  "use strict";
  var auth = window.mlgateAuth;
  var POLL_MS = 10000;
  var SPANS = { "1h": ["1h", "1m"], "24h": ["24h", "15m"], "7d": ["7d", "1h"] };
  var COLORS = ["#2a6db0", "#e67e22", "#27ae60", "#8e44ad", "#c0392b", "#16a085"];
  var plots = {};
  var el = window.mlgateStatus.el;  // status.js, loaded first

  function span() {
    return SPANS[document.getElementById("quality-span").value] || SPANS["1h"];
  }

  function times(series) {
    return series.map(function (b) { return Date.parse(b.start) / 1000; });
  }

  function pick(series, name) {
    return series.map(function (b) { return b[name] === undefined ? null : b[name]; });
  }

  function regression(doc) {
    return doc.quality.state !== "not configured" && doc.quality.task === "regression";
  }

  function draw(key, title, subtitle, series, data) {
    var shape = subtitle + "|" + series.map(function (s) { return s.label; }).join("|");
    var entry = plots[key];
    if (entry && entry.shape !== shape) {
      entry.plot.destroy();
      entry.card.remove();
      entry = null;
    }
    if (!entry) {
      var card = el("div", "card");
      card.setAttribute("data-quality", key);
      card.appendChild(el("h3", null, title));
      var note = el("p", "note");
      card.appendChild(note);
      var box = el("div", "plots");
      card.appendChild(box);
      document.getElementById("quality-charts").appendChild(card);
      var plot = new uPlot({
        title: subtitle, width: 420, height: 170, legend: { show: true, live: false },
        scales: { x: { time: true } }, series: [{}].concat(series),
        axes: [{ size: 30 }, { size: 50 }]
      }, data, box);
      entry = plots[key] = { card: card, plot: plot, note: note, shape: shape };
    } else {
      entry.plot.setData(data);
    }
    entry.seen = true;
    return entry;
  }

  function line(label, color) {
    return { label: label, stroke: color, spanGaps: true, points: { show: true, size: 5 } };
  }

  function totalsText(doc) {
    var t = doc.totals;
    if (doc.quality.state === "not configured") {
      return "quality not configured: " + (doc.quality.reason || "");
    }
    var figure = regression(doc) ? "MAE " + fmt(t.mae) + ", RMSE " + fmt(t.rmse) + ", bias " +
      fmt(t.bias) : "accuracy " + fmt(t.accuracy);
    return figure + " over " + t.count + " labelled row(s); " + t.labelled + " labelled, " +
      t.unlabelled + " unlabelled prediction(s); quality " + doc.quality.state +
      (doc.complete ? "" : " (still reading storage)");
  }

  function fmt(value) {
    return value === null || value === undefined ? "–" : Number(value).toPrecision(4);
  }

  function showDeployment(doc) {
    var s = doc.series;
    var reg = regression(doc);
    var series = reg ? [line("MAE", COLORS[0]), line("RMSE", COLORS[1]), line("bias", COLORS[2])]
      : [line("accuracy", COLORS[0])];
    var data = [times(s)].concat(reg ? [pick(s, "mae"), pick(s, "rmse"), pick(s, "bias")]
      : [pick(s, "accuracy")]);
    var entry = draw("deployment:" + doc.deployment_id, doc.deployment_id,
                     (reg ? "error" : "accuracy") + " by " + doc.window, series, data);
    entry.note.textContent = totalsText(doc);
  }

  function showRoute(doc) {
    var targets = doc.targets;
    if (!targets.length) {
      return;
    }
    var reg = regression(targets[0]);
    var name = reg ? "mae" : "accuracy";
    var series = targets.map(function (t, i) {
      return line(t.deployment_id, COLORS[i % COLORS.length]);
    });
    var data = [times(targets[0].series)].concat(targets.map(function (t) {
      return pick(t.series, name);
    }));
    var entry = draw("route:" + doc.route_id, "route " + doc.route_id,
                     (reg ? "MAE" : "accuracy") + " per variant by " + doc.window, series, data);
    entry.note.textContent = targets.map(function (t) {
      return t.deployment_id + ": " + (reg ? "MAE " + fmt(t.totals.mae) : "accuracy " +
        fmt(t.totals.accuracy)) + " (" + t.totals.labelled + " labelled)";
    }).join("; ");
  }

  function poll() {
    if (!auth.get()) {
      return;
    }
    var query = "?since=" + span()[0] + "&window=" + span()[1];
    Object.keys(plots).forEach(function (k) { plots[k].seen = false; });
    var deployments = auth.fetchJson("/api/v1/model/deployment").then(function (r) {
      if (!r.ok) {
        return [];
      }
      return Promise.all(r.body.map(function (d) {
        return auth.fetchJson("/api/v1/model/deployment/" + encodeURIComponent(d.id) +
                              "/quality" + query).then(function (q) {
          if (q.ok) {
            showDeployment(q.body);
          }
        });
      }));
    });
    var routes = auth.fetchJson("/api/v1/model/route").then(function (r) {
      if (!r.ok) {
        return [];
      }
      return Promise.all(r.body.filter(function (route) {
        return !route.default && route.spec.modelDeployments.length > 1;
      }).map(function (route) {
        return auth.fetchJson("/api/v1/model/route/" + encodeURIComponent(route.id) +
                              "/quality" + query).then(function (q) {
          if (q.ok) {
            showRoute(q.body);
          }
        });
      }));
    });
    Promise.all([deployments, routes]).then(function () {
      Object.keys(plots).forEach(function (k) {
        if (!plots[k].seen) {
          plots[k].plot.destroy();
          plots[k].card.remove();
          delete plots[k];
        }
      });
    });
  }

  window.addEventListener("load", function () {
    auth.onChange(poll);
    document.getElementById("quality-span").addEventListener("change", poll);
    poll();
    window.setInterval(poll, POLL_MS);
  });
})();
