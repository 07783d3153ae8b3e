// Which OpenAPI document to show: ?url=<document> if given (same origin only),
// else openapi.json next to this page. Nothing here is specific to one API.
// The document and every "Try it out" call carry the token from the form at the top
// (mlgate-token.js); the document's bearer schemes are pre-authorized with it.
window.onload = function () {
  var auth = window.mlgateAuth;
  var params = new URLSearchParams(window.location.search);
  var url = new URL(params.get("url") || "openapi.json", window.location.href);
  if (url.origin !== window.location.origin) {
    url = new URL("openapi.json", window.location.href);
  }

  function load() {
    window.ui = SwaggerUIBundle({
      url: url.href,
      dom_id: "#swagger-ui",
      deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      plugins: [SwaggerUIBundle.plugins.DownloadUrl],
      layout: "StandaloneLayout",
      requestInterceptor: auth.requestInterceptor,
      onComplete: function () { auth.preauthorize(window.ui); }
    });
  }

  auth.mount("mlgate-token");
  auth.onChange(function (token) {
    auth.message(token ? "token set for this tab" : "token forgotten");
    load();
  });
  load();
};
