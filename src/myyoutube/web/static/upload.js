// MyYoutube home page uploads: resumable (tus 1.0 through the vendored tus-js-client, at
// /files/), with a progress bar, a Cancel button that terminates the upload, a warning
// before leaving mid-upload, a size check before sending, and a link to each new video. After each stored video the page's grid is told to reload
// ("myyoutube:uploaded" on document). The optional name field names one video instead of
// its file; a file refused for its name stays chosen, so that another name can be typed
// and the upload tried again without picking the file a second time.
// Unfinished uploads this browser remembers (tus-js-client's fingerprints in
// localStorage, left by a reload or a closed tab) are listed above the file picker with
// how far each got, and that choosing the same file again resumes it; the server is
// asked about each (HEAD), and one it no longer holds (finished, cancelled or expired)
// is forgotten instead of listed.
// Files dropped anywhere on the page are uploaded as if chosen and sent with Upload (the
// form's name and "Who can watch" apply); the panel is outlined while files are dragged
// over the page. A drop outside the panel would otherwise make the browser open the
// video in place of the page.
//
// Loaded with <script defer> after text.js and vendor/tus.min.js; user data goes into the DOM as text only.
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
  var unfinishedBox = document.getElementById("unfinished-uploads");
  var nameInput = document.getElementById("video-name");
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
  var upload = { cancel: null, cancelled: false, ending: null };
  // Files refused for their name (taken, or against the rules), kept for a retry under
  // another name: the file input is cleared once any upload of a batch succeeded.
  var waiting = [];
  // Bytes per PATCH: a dropped connection costs at most this much again.
  var PATCH_BYTES = 5 * 1024 * 1024;
  // Waits before each retry after a network error: growing, about ten minutes in all,
  // long enough for a phone to find its Wi-Fi again.
  var RETRY_DELAYS_MS = [0, 1000, 2000, 4000, 8000, 15000, 30000, 30000, 60000, 60000, 60000, 60000, 60000, 60000, 60000];

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

  // Upload one file over tus (/files/, tus-js-client), named `chosenName` or else by its
  // file name; resolves with {ok, message, name, nameRefused}, never rejects. A network error is retried by itself with growing waits, from the
  // offset the server confirmed; a file whose upload was left unfinished (a reload, a
  // closed tab) resumes where it stopped. Cancel terminates the upload on the server.
  function uploadOne(file, label, chosenName) {
    return new Promise(function (resolve) {
      var metadata = { filename: file.name, filetype: file.type || "application/octet-stream" };
      if (visibilityInput) metadata.visibility = visibilityInput.value;
      if (chosenName) metadata.name = chosenName;
      var tusUpload = new window.tus.Upload(file, {
        endpoint: "/files/",
        // The same file under another name is another upload: resuming the unfinished one
        // would store it under the name it was started with.
        fingerprint: function (source, options) {
          return window.tus.defaultOptions.fingerprint(source, options).then(function (print) {
            return chosenName ? print + "-named-" + encodeURIComponent(chosenName) : print;
          });
        },
        chunkSize: PATCH_BYTES,
        retryDelays: RETRY_DELAYS_MS,
        metadata: metadata,
        headers: session.csrfHeaders(),
        storeFingerprintForResuming: true,
        removeFingerprintOnSuccess: true,
        // Retry whatever may pass by itself: no answer at all (offline, a dropped
        // connection), the server busy or restarting, a PATCH whose offset is to be asked
        // again (409; at creation 409 means the name is taken, which no retry changes).
        // The library's default gives up while navigator.onLine is false.
        onShouldRetry: function (err) {
          var response = err.originalResponse;
          var status = response ? response.getStatus() : 0;
          var patching = err.originalRequest && err.originalRequest.getMethod() === "PATCH";
          return status === 0 || status === 423 || status >= 500 || (status === 409 && patching);
        },
        onProgress: function (sent, total) {
          if (!total) return;
          setProgress((sent / total) * 100, label);
          if (sent === total) {
            percentLabel.textContent = (label ? label + " \u2014 " : "") + "Processing\u2026";
          }
        },
        onSuccess: function (payload) {
          var header = payload && payload.lastResponse ? payload.lastResponse.getHeader("Video-Name") : null;
          setProgress(100, label);
          resolve({ ok: true, name: header ? decodeURIComponent(header) : file.name });
        },
        onError: function (err) {
          resolve({ ok: false, message: file.name + ": " + tusErrorSentence(err), nameRefused: refusedForName(err) });
        },
      });
      // abort(true) also terminates the upload on the server (DELETE), removing its bytes,
      // then forgets it here; the list of unfinished uploads waits for that (`ending`),
      // or it would ask the server about an upload being deleted, and list it.
      upload.cancel = function () {
        upload.ending = tusUpload.abort(true).catch(function () {
          /* already gone, or it expires on the server (and stays listed until then) */
        });
        resolve({ ok: false, message: file.name + ": Upload cancelled." });
      };
      setProgress(0, label);
      tusUpload.findPreviousUploads().then(function (previous) {
        if (previous.length) tusUpload.resumeFromPreviousUpload(previous[0]);
        if (!upload.cancelled) tusUpload.start();
      });
    });
  }

  // Whether the server refused to create the upload because of its name: 409 (taken, or
  // looking like a taken name), or 400 saying the name breaks the rules ("field": "name").
  // Another name cures nothing else: not an empty file, nor a title refused.
  function refusedForName(err) {
    var response = err.originalResponse;
    var status = response ? response.getStatus() : 0;
    var creating = err.originalRequest && err.originalRequest.getMethod() === "POST";
    if (!creating) return false;
    if (status === 409) return true;
    if (status !== 400) return false;
    try {
      return JSON.parse(response.getBody()).field === "name";
    } catch (e) {
      return false;
    }
  }

  // Tell which files wait for another name, and take the person to the name field.
  function offerAnotherName(focusInForm) {
    if (!waiting.length) return;
    fileInput.value = "";
    var first = "\u201c" + waiting[0].name + "\u201d";
    statusLine(
      waiting.length === 1
        ? first + " is still chosen: type another name above and press Upload."
        : "Still chosen: " + waiting.map(function (file) { return file.name; }).join(", ") +
            ". Type a name for " + first + " above and press Upload, one file at a time.",
      false
    );
    if (nameInput && focusInForm) {
      nameInput.focus();
      nameInput.select();
    }
  }

  // The server's sentence for a refused request, else one of ours.
  function tusErrorSentence(err) {
    var response = err.originalResponse;
    if (!response) return "Network error \u2014 the upload did not reach the server. Choose the file again to resume.";
    var sentence = "";
    try {
      var body = JSON.parse(response.getBody());
      if (body && typeof body.error === "string") sentence = body.error;
    } catch (e) {
      /* not JSON: fall back below */
    }
    var status = response.getStatus();
    return sentence || FALLBACK_ERRORS[status] || "Upload failed (HTTP " + status + "). Please try again.";
  }

  // Leaving mid-upload would cancel it: the browser asks first (only while uploading, so
  // the page stays eligible for the back/forward cache otherwise).
  function warnBeforeLeaving(event) {
    event.preventDefault();
    event.returnValue = "";
  }

  // Disabling or hiding the focused control drops keyboard focus to the top of the page:
  // it moves to Cancel while uploading and back to the file picker after, but only from
  // the form (or from nowhere), never away from wherever the person went meanwhile.
  function setUploading(active) {
    var focused = document.activeElement;
    var focusInForm = !focused || focused === document.body || form.contains(focused);
    uploadButton.disabled = active;
    fileInput.disabled = active;
    cancelButton.hidden = !active;
    progressRow.hidden = !active;
    if (focusInForm) (active ? cancelButton : fileInput).focus();
    if (active) window.addEventListener("beforeunload", warnBeforeLeaving);
    else window.removeEventListener("beforeunload", warnBeforeLeaving);
  }

  // Upload `files` in turn (`chosenName` names the one file it may be given with);
  // `later` are files still waiting for a name of their own.
  function uploadAll(files, chosenName, later) {
    var index = 0;
    var uploaded = 0;
    var refusedNames = [];
    upload.cancelled = false;
    statusBox.replaceChildren();
    setUploading(true);

    function next() {
      if (index >= files.length || upload.cancelled) {
        // Cancel stops the whole batch: each file it never started is named, so none
        // seems uploaded by silence.
        files.slice(index).forEach(function (file) {
          statusLine(file.name + ": Not uploaded (cancelled).", false);
        });
        upload.cancel = null;
        setUploading(false);
        // Clear the chosen files only: "Who can watch" keeps its choice, so a second
        // upload meant for "Only me" is not published because the form forgot. A name
        // that was used is cleared: it is taken now.
        if (uploaded) fileInput.value = "";
        if (uploaded && chosenName && nameInput) nameInput.value = "";
        waiting = refusedNames.concat(later);
        offerAnotherName(form.contains(document.activeElement));
        var ending = upload.ending || Promise.resolve();
        upload.ending = null;
        ending.then(showUnfinished);
        return Promise.resolve();
      }
      var file = files[index];
      index += 1;
      if (maxUploadBytes > 0 && file.size > maxUploadBytes) {
        statusLine(file.name + ": The file is larger than the " + text.humanSize(maxUploadBytes) + " upload limit.", false);
        return next();
      }
      var label = files.length > 1 ? index + "/" + files.length : "";
      return uploadOne(file, label, chosenName).then(function (result) {
        if (result.ok) {
          statusLine("Uploaded ", true, result.name);
          uploaded += 1;
          document.dispatchEvent(new CustomEvent("myyoutube:uploaded", { detail: result.name }));
        } else {
          statusLine(result.message, false);
          if (result.nameRefused) refusedNames.push(file);
        }
        return next();
      });
    }
    return next();
  }

  // ------------------------------------------------------------ unfinished uploads
  // {entry, sent, total} for a remembered upload the server still holds (sent is null
  // when the server could not say), or null once it is forgotten.
  function askAbout(storage, entry) {
    var headers = Object.assign({ "Tus-Resumable": "1.0.0" }, session.csrfHeaders());
    return fetch(entry.uploadUrl, { method: "HEAD", headers: headers, cache: "no-store" })
      .then(function (resp) {
        // 404: finished, cancelled or expired; Video-Name: this very HEAD finished it.
        if (resp.status === 404 || resp.headers.get("Video-Name")) {
          return storage.removeUpload(entry.urlStorageKey).then(function () { return null; });
        }
        var sent = resp.ok ? Number(resp.headers.get("Upload-Offset")) : NaN;
        var expires = new Date(resp.headers.get("Upload-Expires") || "");
        return {
          entry: entry,
          sent: isFinite(sent) ? sent : null,
          total: entry.size,
          expires: isNaN(expires.getTime()) ? null : expires,
        };
      })
      .catch(function () {
        return { entry: entry, sent: null, total: entry.size, expires: null };
      });
  }

  function unfinishedLine(upload) {
    var metadata = upload.entry.metadata || {};
    var line = metadata.filename || "A file";
    if (metadata.name) line += " (as \u201c" + metadata.name + "\u201d)";
    if (upload.sent !== null && upload.total > 0) {
      line += ": " + Math.floor((upload.sent / upload.total) * 100) + "% (" + text.humanSize(upload.sent) +
        " of " + text.humanSize(upload.total) + ")";
    }
    if (upload.expires) {
      line += ", kept until " + upload.expires.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    }
    return el("li", "", line);
  }

  function showUnfinished() {
    var storage = window.tus.defaultOptions.urlStorage;
    if (!unfinishedBox || !storage || !storage.findAllUploads) return Promise.resolve();
    return storage
      .findAllUploads()
      .then(function (entries) {
        var ours = entries.filter(function (entry) { return typeof entry.uploadUrl === "string"; });
        return Promise.all(ours.map(function (entry) { return askAbout(storage, entry); }));
      })
      .then(function (uploads) {
        var open = uploads.filter(Boolean);
        unfinishedBox.replaceChildren();
        unfinishedBox.hidden = !open.length;
        if (!open.length) return;
        unfinishedBox.appendChild(el("p", "", open.length === 1 ? "An upload is unfinished:" : "Uploads are unfinished:"));
        var list = el("ul", "");
        open.forEach(function (upload) { list.appendChild(unfinishedLine(upload)); });
        unfinishedBox.appendChild(list);
        unfinishedBox.appendChild(
          el("p", "", "Choose the same file again and press Upload to resume where it stopped.")
        );
      })
      .catch(function () {
        /* storage unreadable: nothing to say */
      });
  }

  cancelButton.addEventListener("click", function () {
    upload.cancelled = true;
    if (upload.cancel) upload.cancel();
  });

  // ------------------------------------------------------------ drag and drop
  var panel = form.closest(".upload-panel") || form;
  var dragEnds = null;
  // dragover repeats every ~50-350 ms while files are over the page, and dragleave also
  // fires between the page's own elements: the outline goes once dragover stops.
  var DRAG_SETTLE_MS = 400;

  function carriesFiles(event) {
    var types = event.dataTransfer ? event.dataTransfer.types : [];
    return Array.prototype.indexOf.call(types, "Files") >= 0;
  }

  function dragging(active) {
    panel.classList.toggle("drop-target", active);
    clearTimeout(dragEnds);
    if (active) dragEnds = setTimeout(function () { dragging(false); }, DRAG_SETTLE_MS);
  }

  document.addEventListener("dragover", function (event) {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = uploadButton.disabled ? "none" : "copy";
    dragging(!uploadButton.disabled);
  });

  document.addEventListener("drop", function (event) {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    dragging(false);
    var files = Array.prototype.slice.call(event.dataTransfer.files || []);
    if (!files.length) return;
    if (uploadButton.disabled) {
      statusLine("An upload is still running; drop the files again once it ends, or cancel it.", false);
      return;
    }
    startUploads(files);
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (uploadButton.disabled) return;
    startUploads(Array.prototype.slice.call(fileInput.files || []));
  });

  // Upload the files chosen (or dropped); none chosen: those waiting for another name.
  function startUploads(chosen) {
    var name = nameInput ? nameInput.value.trim() : "";
    // A new choice of files replaces the ones waiting; with none, the waiting ones are
    // tried again (the first alone when a name is typed: a name is for one video).
    var files = chosen.length ? chosen : waiting.slice(0, name ? 1 : waiting.length);
    var later = chosen.length ? [] : waiting.slice(files.length);
    if (!files.length) {
      statusBox.replaceChildren();
      statusLine("Choose a video file first.", false);
      fileInput.focus();
      return;
    }
    if (name && files.length > 1) {
      statusBox.replaceChildren();
      statusLine("A name is for one video: choose one file to name, or leave the name empty to use each file\u2019s own name.", false);
      nameInput.focus();
      return;
    }
    uploadAll(files, name, later);
  }

  showUnfinished();

})();
