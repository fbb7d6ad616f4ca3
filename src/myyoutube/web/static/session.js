// MyYoutube session helper: the CSRF token a signed-in page carries in
// <meta name="csrf-token">, as the X-CSRF-Token header every state-changing request
// (upload, delete) must send with the session cookie. Loaded before the page's scripts.
"use strict";

(function () {
  var meta = document.querySelector('meta[name="csrf-token"]');
  var token = meta ? meta.getAttribute("content") || "" : "";
  window.MyYoutube = window.MyYoutube || {};
  window.MyYoutube.session = {
    // Headers to add to a state-changing request: {"X-CSRF-Token": token}, or {}.
    csrfHeaders: function () {
      return token ? { "X-CSRF-Token": token } : {};
    },
  };
})();
