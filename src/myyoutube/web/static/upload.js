// MyYoutube home page uploads: XMLHttpRequest for progress events, a Cancel button that
// aborts it, a warning before leaving mid-upload, a size check before sending, and a link
// to each new video. After each stored video the page's grid is told to reload
// ("myyoutube:uploaded" on document).
//
// Loaded with <script defer> after text.js; user data goes into the DOM as text only.
"use strict";

(function () {
  var text = window.MyYoutube.text;
  var el = text.el;
  var form = document.getElementById("upload-form");
  var fileInput = document.getElementById("file");
  var uploadButton = document.getElementById("upload-button");
  var cancelButton = document.getElementById("upload-cancel");
  var progressRow = document.getElementById("upload-progress-row");
  var progressBar = document.getElementById("upload-progress");
  var percentLabel = document.getElementById("upload-percent");
  var statusBox = document.getElementById("upload-status");
  var visibilityInput = document.getElementById("visibility");
  var session = window.MyYoutube.session;

  var FALLBACK_ERRORS = {
    400: "The server rejected that file name.",
    409: "A video with that name already exists.",
    413: "That file is too large to upload.",
    415: "That file does not look like a video.",
    503: "The server is busy right now. Please try again shortly.",
    507: "The video store is full.",
  };
  var maxUploadBytes = Number(form.getAttribute("data-max-upload-bytes"));
  var upload = { xhr: null, cancelled: false };

  function errorSentence(xhr) {
    var sentence = "";
    try {
      var body = JSON.parse(xhr.responseText);
      if (body && typeof body.error === "string") sentence = body.error;
    } catch (e) {
      /* not JSON: fall back below */
    }
    if (!sentence) {
      sentence = FALLBACK_ERRORS[xhr.status] || "Upload failed (HTTP " + xhr.status + "). Please try again.";
    }
    var retry = Number(xhr.getResponseHeader("Retry-After"));
    if (xhr.status === 503 && isFinite(retry) && retry > 0) {
      sentence += " (retry in " + Math.ceil(retry) + " s)";
    }
    return sentence;
  }

  // label is "" for a single file, "2/3" while uploading several.
  function setProgress(pct, label) {
    var p = Math.max(0, Math.min(100, Math.floor(pct)));
    progressBar.value = p;
    percentLabel.textContent = (label ? label + " \u2014 " : "") + p + "%";
  }

  // A status line: plain text, or text followed by a link to the video.
  function statusLine(sentence, ok, video) {
    var line = el("p", "status-line " + (ok ? "status-ok" : "status-error"), sentence);
    if (video) {
      var link = el("a", "", video);
      link.setAttribute("href", "/watch/" + encodeURIComponent(video));
      line.appendChild(link);
    }
    statusBox.appendChild(line);
  }

  // Upload one file; resolves with {ok, message, name}, never rejects.
  function uploadOne(file, label) {
    return new Promise(function (resolve) {
      var xhr = new XMLHttpRequest();
      var data = new FormData();
      // The server reads the visibility before the file: it must come first.
      if (visibilityInput) data.append("visibility", visibilityInput.value);
      data.append("file", file, file.name);
      upload.xhr = xhr;
      setProgress(0, label);
      xhr.upload.addEventListener("progress", function (event) {
        if (!event.lengthComputable || !event.total) return;
        setProgress((event.loaded / event.total) * 100, label);
      });
      // Body fully sent; the server may still be storing/replicating it.
      xhr.upload.addEventListener("load", function () {
        setProgress(100, label);
        percentLabel.textContent = (label ? label + " \u2014 " : "") + "Processing\u2026";
      });
      xhr.addEventListener("load", function () {
        if (xhr.status >= 200 && xhr.status < 300) {
          var name = file.name;
          try {
            var body = JSON.parse(xhr.responseText);
            if (body && typeof body.name === "string") name = body.name;
          } catch (e) {
            /* keep the local file name */
          }
          setProgress(100, label);
          resolve({ ok: true, name: name });
        } else {
          resolve({ ok: false, message: file.name + ": " + errorSentence(xhr) });
        }
      });
      xhr.addEventListener("error", function () {
        resolve({ ok: false, message: file.name + ": Network error \u2014 the upload did not reach the server." });
      });
      xhr.addEventListener("abort", function () {
        resolve({ ok: false, message: file.name + ": Upload cancelled." });
      });
      xhr.open("POST", "/upload");
      xhr.setRequestHeader("Accept", "application/json");
      var csrf = session.csrfHeaders();
      Object.keys(csrf).forEach(function (name) {
        xhr.setRequestHeader(name, csrf[name]);
      });
      xhr.send(data);
    });
  }

  // Leaving mid-upload would cancel it: the browser asks first (only while uploading, so
  // the page stays eligible for the back/forward cache otherwise).
  function warnBeforeLeaving(event) {
    event.preventDefault();
    event.returnValue = "";
  }

  function setUploading(active) {
    uploadButton.disabled = active;
    fileInput.disabled = active;
    cancelButton.hidden = !active;
    progressRow.hidden = !active;
    if (active) window.addEventListener("beforeunload", warnBeforeLeaving);
    else window.removeEventListener("beforeunload", warnBeforeLeaving);
  }

  function uploadAll(files) {
    var index = 0;
    var uploaded = 0;
    upload.cancelled = false;
    statusBox.replaceChildren();
    setUploading(true);

    function next() {
      if (index >= files.length || upload.cancelled) {
        upload.xhr = null;
        setUploading(false);
        if (uploaded) form.reset();
        return Promise.resolve();
      }
      var file = files[index];
      index += 1;
      if (maxUploadBytes > 0 && file.size > maxUploadBytes) {
        statusLine(file.name + ": The file is larger than the " + text.humanSize(maxUploadBytes) + " upload limit.", false);
        return next();
      }
      var label = files.length > 1 ? index + "/" + files.length : "";
      return uploadOne(file, label).then(function (result) {
        if (result.ok) {
          statusLine("Uploaded ", true, result.name);
          uploaded += 1;
          document.dispatchEvent(new CustomEvent("myyoutube:uploaded", { detail: result.name }));
        } else {
          statusLine(result.message, false);
        }
        return next();
      });
    }
    return next();
  }

  cancelButton.addEventListener("click", function () {
    upload.cancelled = true;
    if (upload.xhr) upload.xhr.abort();
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (uploadButton.disabled) return;
    var files = Array.prototype.slice.call(fileInput.files || []);
    if (!files.length) {
      statusBox.replaceChildren();
      statusLine("Choose a video file first.", false);
      fileInput.focus();
      return;
    }
    uploadAll(files);
  });

})();
