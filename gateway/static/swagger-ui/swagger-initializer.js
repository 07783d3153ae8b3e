// Which OpenAPI document to show: ?url=<document> if given (same origin only),
// else openapi.json next to this page. Nothing here is specific to one API.
window.onload = function () {
  var params = new URLSearchParams(window.location.search);
  var url = new URL(params.get("url") || "openapi.json", window.location.href);
  if (url.origin !== window.location.origin) {
    url = new URL("openapi.json", window.location.href);
  }
  window.ui = SwaggerUIBundle({
    url: url.href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
    persistAuthorization: true
  });
};
