// The service catalog page: the list of deployments (api/models) on the left, the chosen
// one's OpenAPI document in Swagger UI on the right. Every request carries the token from
// the form at the top (mlgate-token.js); "Try it out" goes to the gateway's /model/<id>.
(function () {
  "use strict";
  var auth = window.mlgateAuth;
  var REFRESH_MS = 10000;
  var selected = null;
  var selectedEntry = null;
  var shown = "";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function render(entries) {
    var list = document.getElementById("catalog-list");
    list.textContent = "";
    if (!entries.length) {
      list.appendChild(el("li", "unlisted", "No model deployments yet."));
      return;
    }
    entries.forEach(function (entry) {
      var item = el("li", entry.listed ? "listed" : "unlisted");
      item.setAttribute("data-deployment", entry.id);
      var model = entry.model_name + " " + entry.model_version;
      if (entry.listed) {
        var button = el("button");
        button.type = "button";
        button.appendChild(el("span", "id", entry.id));
        button.appendChild(el("span", "model", model));
        button.addEventListener("click", function () { select(entry); });
        item.appendChild(button);
        if (entry.id === selected) {
          item.classList.add("active");
        }
      } else {
        item.appendChild(el("span", "id", entry.id));
        item.appendChild(el("span", "model", model));
        item.appendChild(el("p", "reason", entry.reason));
      }
      list.appendChild(item);
    });
  }

  function select(entry) {
    selected = entry.id;
    selectedEntry = entry;
    Array.prototype.forEach.call(document.querySelectorAll("#catalog-list li"), function (li) {
      li.classList.toggle("active", li.getAttribute("data-deployment") === entry.id);
    });
    document.getElementById("catalog-empty").hidden = true;
    var ui = SwaggerUIBundle({
      url: entry.document,
      dom_id: "#swagger-ui",
      layout: "BaseLayout",
      presets: [SwaggerUIBundle.presets.apis],
      deepLinking: false,
      requestInterceptor: auth.requestInterceptor,
      onComplete: function () { auth.preauthorize(ui); }
    });
    window.ui = ui;
  }

  function refresh() {
    if (!auth.get()) {
      render([]);
      document.getElementById("catalog-list").firstChild.textContent =
        "Give a token above to see the deployments.";
      shown = "";
      return;
    }
    auth.fetchJson("api/models").then(function (r) {
      if (!r.ok) {
        auth.message(r.status + ": " + ((r.body && r.body.message) || "the list is not available"),
                     true);
        return;
      }
      auth.message("token accepted");
      var key = JSON.stringify(r.body.deployments);
      if (key !== shown) {
        shown = key;
        render(r.body.deployments);
      }
    }).catch(function (err) {
      auth.message("cannot reach the gateway: " + err, true);
    });
  }

  window.addEventListener("load", function () {
    auth.mount("mlgate-token");
    auth.onChange(function () {
      shown = "";
      if (selectedEntry) {
        select(selectedEntry);  // reload its document with the new token
      }
      refresh();
    });
    refresh();
    window.setInterval(refresh, REFRESH_MS);
  });
})();
