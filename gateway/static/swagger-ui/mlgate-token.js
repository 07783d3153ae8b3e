// mlgate's pages: the token form at the top of the page, and the helpers that send it.
//
// A browser cannot send a bearer token when it loads a page, so the pages themselves
// are static and open, and every data request they make carries the token the user
// gives here. The token is kept in sessionStorage (this tab only, gone when it closes)
// and sent only to this page's own origin.
(function () {
  "use strict";
  var KEY = "mlgate.token";
  var listeners = [];

  function get() {
    try {
      return window.sessionStorage.getItem(KEY) || "";
    } catch (e) {
      return "";
    }
  }

  function set(token) {
    token = (token || "").trim().replace(/^bearer\s+/i, "");
    try {
      if (token) {
        window.sessionStorage.setItem(KEY, token);
      } else {
        window.sessionStorage.removeItem(KEY);
      }
    } catch (e) {
      /* storage disabled: the token lives until the page reloads */
    }
    listeners.forEach(function (fn) { fn(token); });
  }

  function sameOrigin(url) {
    try {
      return new URL(url, window.location.href).origin === window.location.origin;
    } catch (e) {
      return false;
    }
  }

  function headers(extra) {
    var out = Object.assign({}, extra || {});
    var token = get();
    if (token) {
      out.Authorization = "Bearer " + token;
    }
    return out;
  }

  // fetch(url) with the token; resolves to {status, ok, body} (body: parsed JSON or null).
  function fetchJson(url) {
    return window.fetch(url, {
      headers: headers({ Accept: "application/json" }),
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (resp) {
      return resp.json().catch(function () { return null; }).then(function (body) {
        return { status: resp.status, ok: resp.ok, body: body };
      });
    });
  }

  // Swagger UI's requestInterceptor: the token on every same-origin request that has
  // no Authorization header of its own (one set in the Authorize dialog wins).
  function requestInterceptor(req) {
    var token = get();
    if (token && sameOrigin(req.url)) {
      req.headers = req.headers || {};
      var has = Object.keys(req.headers).some(function (k) {
        return k.toLowerCase() === "authorization";
      });
      if (!has) {
        req.headers.Authorization = "Bearer " + token;
      }
    }
    return req;
  }

  // Pre-authorize every bearer scheme of the loaded document, so "Try it out" sends it.
  function preauthorize(ui) {
    var token = get();
    if (!token || !ui) {
      return;
    }
    var spec = ui.specSelectors.specJson();
    var schemes = spec.getIn(["components", "securitySchemes"]);
    if (!schemes) {
      return;
    }
    schemes.forEach(function (scheme, name) {
      if (scheme.get("type") === "http" && String(scheme.get("scheme")).toLowerCase() === "bearer") {
        ui.preauthorizeApiKey(name, token);
      }
    });
  }

  function message(text, isError) {
    var el = document.getElementById("mlgate-token-message");
    if (el) {
      el.textContent = text || "";
      el.className = isError ? "mlgate-token-error" : "";
    }
  }

  var STYLE =
    "#mlgate-token{font:14px sans-serif;background:#1f2a36;color:#fff;padding:8px 16px}" +
    "#mlgate-token input{width:28em;max-width:60vw;padding:3px 6px;font:13px monospace}" +
    "#mlgate-token button{margin-left:4px;padding:3px 10px;cursor:pointer}" +
    "#mlgate-token-message{margin-left:12px;color:#b9e4b5}" +
    "#mlgate-token-message.mlgate-token-error{color:#ffb4a8}";

  // The form: <div id="mlgate-token"></div> in the page becomes it.
  function mount(id) {
    var box = document.getElementById(id || "mlgate-token");
    if (!box) {
      return;
    }
    var style = document.createElement("style");
    style.textContent = STYLE;
    document.head.appendChild(style);
    box.innerHTML =
      '<form id="mlgate-token-form" autocomplete="off">' +
      '<label for="mlgate-token-input">Bearer token</label> ' +
      '<input id="mlgate-token-input" type="password" spellcheck="false" ' +
      'placeholder="paste a token (make run prints one; mlgate token makes more)"> ' +
      '<button type="submit" id="mlgate-token-use">Use token</button> ' +
      '<button type="button" id="mlgate-token-forget">Forget</button> ' +
      '<span id="mlgate-token-message"></span></form>';
    var input = document.getElementById("mlgate-token-input");
    input.value = get();
    document.getElementById("mlgate-token-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      set(input.value);
    });
    document.getElementById("mlgate-token-forget").addEventListener("click", function () {
      input.value = "";
      set("");
    });
    message(get() ? "token set for this tab" : "no token yet: the data below needs one");
  }

  window.mlgateAuth = {
    get: get,
    set: set,
    headers: headers,
    fetchJson: fetchJson,
    requestInterceptor: requestInterceptor,
    preauthorize: preauthorize,
    message: message,
    mount: mount,
    onChange: function (fn) { listeners.push(fn); }
  };
})();
