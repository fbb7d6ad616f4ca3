// MyYoutube home page: video grid, live search and upload with progress.
//
// Loaded with <script defer> (the CSP forbids inline code). All user data is
// put into the DOM with textContent / setAttribute, never as markup.
"use strict";

(function () {
  var SEARCH_DEBOUNCE_MS = 150;
  var SIZE_UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

  var grid = document.getElementById("videos");
  var emptyState = document.getElementById("empty-state");
  var countLabel = document.getElementById("video-count");
  var searchBox = document.getElementById("search");
  var form = document.getElementById("upload-form");
  var fileInput = document.getElementById("file");
  var uploadButton = document.getElementById("upload-button") ||
    (form && form.querySelector("button[type=submit]"));
  var progressRow = document.getElementById("upload-progress-row");
  var progressBar = document.getElementById("upload-progress");
  var percentLabel = document.getElementById("upload-percent");
  var statusBox = document.getElementById("upload-status");

  // ------------------------------------------------------------ formatting
  // Mirrors formatting.human_size: 1024 steps, half-up rounding, one decimal
  // below 100, none from 100 up, and "1024 X" rolls over to "1.0 next".
  function humanSize(n) {
    var value = Number(n);
    if (!isFinite(value) || value < 0) return "";
    var unit = 0;
    var last = SIZE_UNITS.length - 1;
    while (value >= 1024 && unit < last) {
      value /= 1024;
      unit += 1;
    }
    if (unit === 0) return Math.floor(value) + " B";
    var tenths = Math.floor(value * 10 + 0.5);
    if (tenths < 1000) return (tenths / 10).toFixed(1) + " " + SIZE_UNITS[unit];
    var whole = Math.floor(value + 0.5);
    if (whole >= 1024 && unit < last) return "1.0 " + SIZE_UNITS[unit + 1];
    return whole + " " + SIZE_UNITS[unit];
  }

  // Mirrors formatting.human_duration: m:ss or h:mm:ss.
  function humanDuration(seconds) {
    var total = Math.floor(Math.max(0, Number(seconds)));
    var h = Math.floor(total / 3600);
    var m = Math.floor((total % 3600) / 60);
    var s = total % 60;
    var ss = (s < 10 ? "0" : "") + s;
    if (h) return h + ":" + (m < 10 ? "0" : "") + m + ":" + ss;
    return m + ":" + ss;
  }

  function humanDate(unixSeconds) {
    var ts = Number(unixSeconds);
    if (!isFinite(ts)) return "";
    var d = new Date(ts * 1000);
    if (isNaN(d.getTime())) return "";
    try {
      return d.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
    } catch (e) {
      return d.toDateString();
    }
  }

  function isNumber(v) {
    return typeof v === "number" && isFinite(v);
  }

  // ------------------------------------------------------------ the grid
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function placeholder() {
    var box = el("div", "thumb-placeholder");
    box.setAttribute("aria-hidden", "true");
    return box;
  }

  function buildThumb(video, encoded) {
    var thumb = el("div", "thumb");
    if (video.has_thumbnail === true) {
      var img = document.createElement("img");
      img.setAttribute("src", "/thumbnail/" + encoded);
      img.setAttribute("alt", "");
      img.setAttribute("loading", "lazy");
      img.setAttribute("decoding", "async");
      img.addEventListener("error", function () {
        img.replaceWith(placeholder());
      });
      thumb.appendChild(img);
    } else {
      thumb.appendChild(placeholder());
    }
    if (isNumber(video.duration_s) && video.duration_s >= 0) {
      thumb.appendChild(el("span", "badge", humanDuration(video.duration_s)));
    }
    return thumb;
  }

  function metaText(video) {
    var parts = [];
    if (isNumber(video.size)) parts.push(humanSize(video.size));
    var date = humanDate(video.uploaded_at);
    if (date) parts.push(date);
    if (isNumber(video.width) && isNumber(video.height) && video.width > 0 && video.height > 0) {
      parts.push(Math.floor(video.width) + "\u00d7" + Math.floor(video.height));
    }
    return parts.join(" \u00b7 ");
  }

  function buildCard(video) {
    var name = String(video.name);
    var encoded = encodeURIComponent(name);
    var card = el("a", "video-card");
    card.setAttribute("href", "/watch/" + encoded);
    card.setAttribute("data-name", name);
    card.setAttribute("title", name);
    card.appendChild(buildThumb(video, encoded));
    var body = el("div", "card-body");
    body.appendChild(el("h3", "card-title", name));
    body.appendChild(el("p", "card-meta", metaText(video)));
    card.appendChild(body);
    return card;
  }

  function showEmpty(message) {
    emptyState.textContent = message;
    emptyState.hidden = !message;
  }

  function render(videos, query) {
    var fragment = document.createDocumentFragment();
    videos.forEach(function (video) {
      if (video && typeof video.name === "string") fragment.appendChild(buildCard(video));
    });
    grid.replaceChildren(fragment);
    grid.setAttribute("aria-busy", "false");
    var n = grid.childElementCount;
    if (countLabel) {
      countLabel.textContent = n ? n + (n === 1 ? " video" : " videos") : "";
    }
    if (n) showEmpty("");
    else if (query) showEmpty("No videos match \u201c" + query + "\u201d.");
    else showEmpty("No videos yet \u2014 upload one!");
  }

  var inflight = null;

  function loadVideos() {
    var query = searchBox ? searchBox.value.trim() : "";
    var url = query ? "/search?q=" + encodeURIComponent(query) : "/listar";
    if (inflight) inflight.abort();
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    inflight = controller;
    grid.setAttribute("aria-busy", "true");
    return fetch(url, {
      headers: { Accept: "application/json" },
      cache: "no-store",
      signal: controller ? controller.signal : undefined,
    })
      .then(function (resp) {
        if (!resp.ok) throw new Error("HTTP " + resp.status);
        return resp.json();
      })
      .then(function (data) {
        if (inflight !== controller) return; // a newer request superseded us
        inflight = null;
        render(Array.isArray(data && data.videos) ? data.videos : [], query);
      })
      .catch(function (err) {
        if (err && err.name === "AbortError") return;
        if (inflight !== controller) return;
        inflight = null;
        grid.replaceChildren();
        grid.setAttribute("aria-busy", "false");
        if (countLabel) countLabel.textContent = "";
        showEmpty("Could not load the video list (" + (err && err.message ? err.message : "network error") +
          "). Please try again.");
      });
  }

  // ------------------------------------------------------------ search
  if (searchBox) {
    var timer = null;
    searchBox.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(loadVideos, SEARCH_DEBOUNCE_MS);
    });
    searchBox.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        clearTimeout(timer);
        loadVideos();
      }
    });
  }

  // ------------------------------------------------------------ upload
  var FALLBACK_ERRORS = {
    400: "The server rejected that file name.",
    409: "A video with that name already exists.",
    413: "That file is too large to upload.",
    415: "That file does not look like a video.",
    503: "The server is busy right now. Please try again shortly.",
    507: "The video store is full.",
  };

  function errorSentence(xhr) {
    var sentence = "";
    try {
      var body = JSON.parse(xhr.responseText);
      if (body && typeof body.error === "string") sentence = body.error;
    } catch (e) {
      /* not JSON: fall back below */
    }
    if (!sentence) {
      sentence = FALLBACK_ERRORS[xhr.status] ||
        "Upload failed (HTTP " + xhr.status + "). Please try again.";
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

  function statusLine(text, ok) {
    var line = el("p", "status-line " + (ok ? "status-ok" : "status-error"), text);
    statusBox.appendChild(line);
  }

  // Upload one file; resolves with {ok, message}, never rejects.
  function uploadOne(file, label) {
    return new Promise(function (resolve) {
      var xhr = new XMLHttpRequest();
      var data = new FormData();
      data.append("file", file, file.name);
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
        if (xhr.status === 201 || (xhr.status >= 200 && xhr.status < 300)) {
          var name = file.name;
          try {
            var body = JSON.parse(xhr.responseText);
            if (body && typeof body.name === "string") name = body.name;
          } catch (e) {
            /* keep the local file name */
          }
          setProgress(100, label);
          resolve({ ok: true, message: "Uploaded " + name });
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
      xhr.send(data);
    });
  }

  function uploadAll(files) {
    var index = 0;
    var uploaded = 0;
    uploadButton.disabled = true;
    fileInput.disabled = true;
    statusBox.replaceChildren();
    progressRow.hidden = false;

    function next() {
      if (index >= files.length) {
        uploadButton.disabled = false;
        fileInput.disabled = false;
        progressRow.hidden = true;
        if (uploaded) form.reset();
        return Promise.resolve();
      }
      var file = files[index];
      index += 1;
      var label = files.length > 1 ? index + "/" + files.length : "";
      return uploadOne(file, label).then(function (result) {
        statusLine(result.message, result.ok);
        if (result.ok) {
          uploaded += 1;
          loadVideos();
        }
        return next();
      });
    }
    return next();
  }

  if (form && fileInput && uploadButton) {
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
  }

  loadVideos();
})();
