// MyYoutube home page: the video grid a page at a time, search kept in the URL with the
// matched words highlighted, and uploads with progress, a Cancel button and a link to the
// new video.
//
// Loaded with <script defer> (the CSP forbids inline code). All user data is put into the
// DOM with textContent / createTextNode / setAttribute, never as markup.
//
// The grid asks /listar (or /search?q=) for PAGE_VIDEOS videos and follows the answer's
// `next` cursor when the "Load more" button nears the viewport (an IntersectionObserver)
// or is clicked; a server that does not page sends no `next`, which means "no more".
// Leaving the page stores what was loaded and the scroll position in sessionStorage; Back
// (a back_forward navigation of the same URL) puts both back instead of starting over.
"use strict";

(function () {
  var PAGE_VIDEOS = 50;
  var SEARCH_DEBOUNCE_MS = 150;
  // Start fetching the next page while the button is still this far below the viewport.
  var LOAD_AHEAD_PX = 800;
  var STORE_KEY = "myyoutube.home";
  // sessionStorage holds a few MB per site; a longer list is simply not kept for Back.
  var MAX_STORED_CHARS = 2000000;
  var SIZE_UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

  var heading = document.getElementById("page-title");
  var grid = document.getElementById("videos");
  var emptyState = document.getElementById("empty-state");
  var countLabel = document.getElementById("video-count");
  var moreButton = document.getElementById("load-more");
  var searchBox = document.getElementById("search");
  var form = document.getElementById("upload-form");
  var fileInput = document.getElementById("file");
  var uploadButton = document.getElementById("upload-button");
  var cancelButton = document.getElementById("upload-cancel");
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

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ------------------------------------------------------------ highlighting
  // Search is case- and accent-insensitive ("cafe" finds "Café"), so matching is done on a
  // folded copy of the text (NFD, combining marks dropped, lower case) that remembers, for
  // each folded character, where its original character starts and ends.
  var COMBINING_MARKS = /[\u0300-\u036f]/g;
  var WORD_CHAR = /[\p{L}\p{N}]/u;

  function fold(text) {
    var folded = "";
    var starts = [];
    var ends = [];
    for (var i = 0; i < text.length; ) {
      var ch = String.fromCodePoint(text.codePointAt(i));
      var plain = ch.normalize("NFD").replace(COMBINING_MARKS, "").toLowerCase();
      for (var k = 0; k < plain.length; k++) {
        folded += plain[k];
        starts.push(i);
        ends.push(i + ch.length);
      }
      i += ch.length;
    }
    return { text: folded, starts: starts, ends: ends };
  }

  function searchWords(query) {
    return fold(query).text.split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  }

  // Where each word occurs in the folded text: at the start of a word when it does so
  // anywhere (the search matches word prefixes), else wherever it occurs.
  function occurrences(folded, word) {
    var atWordStart = [];
    var anywhere = [];
    for (var at = folded.indexOf(word); at !== -1; at = folded.indexOf(word, at + 1)) {
      anywhere.push(at);
      if (at === 0 || !WORD_CHAR.test(folded[at - 1])) atWordStart.push(at);
    }
    return atWordStart.length ? atWordStart : anywhere;
  }

  // Sorted, merged [start, end) ranges of `text` to highlight for `query`.
  function matchRanges(text, query) {
    var folded = fold(text);
    var ranges = [];
    searchWords(query).forEach(function (word) {
      occurrences(folded.text, word).forEach(function (at) {
        ranges.push([folded.starts[at], folded.ends[at + word.length - 1]]);
      });
    });
    ranges.sort(function (a, b) {
      return a[0] - b[0];
    });
    var merged = [];
    ranges.forEach(function (range) {
      var last = merged[merged.length - 1];
      if (last && range[0] <= last[1]) last[1] = Math.max(last[1], range[1]);
      else merged.push(range.slice());
    });
    return merged;
  }

  // `text` as text nodes, with each match in a <mark> (never parsed as markup).
  function highlighted(text, query) {
    var fragment = document.createDocumentFragment();
    var at = 0;
    matchRanges(text, query).forEach(function (range) {
      if (range[0] > at) fragment.appendChild(document.createTextNode(text.slice(at, range[0])));
      fragment.appendChild(el("mark", "", text.slice(range[0], range[1])));
      at = range[1];
    });
    if (at < text.length) fragment.appendChild(document.createTextNode(text.slice(at)));
    return fragment;
  }

  // ------------------------------------------------------------ cards
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
    if (isNumber(video.views) && video.views >= 0) {
      parts.push(video.views.toLocaleString() + (video.views === 1 ? " view" : " views"));
    }
    return parts.join(" \u00b7 ");
  }

  function titleOf(video) {
    return typeof video.title === "string" && video.title.trim() ? video.title : video.name;
  }

  function buildCard(video, query) {
    var encoded = encodeURIComponent(video.name);
    var card = el("a", "video-card");
    card.setAttribute("href", "/watch/" + encoded);
    card.setAttribute("data-name", video.name);
    card.setAttribute("title", video.name);
    card.appendChild(buildThumb(video, encoded));
    var body = el("div", "card-body");
    var title = el("h3", "card-title");
    title.appendChild(highlighted(titleOf(video), query));
    body.appendChild(title);
    body.appendChild(el("p", "card-meta", metaText(video)));
    card.appendChild(body);
    return card;
  }

  // ------------------------------------------------------------ the grid
  // What the grid shows: the query it answers, the videos loaded so far, the cursor of
  // the next page (null: no more), and the request in flight, if any.
  var state = { query: "", videos: [], names: new Set(), next: null, inflight: null };

  function showEmpty(message) {
    emptyState.textContent = message;
    emptyState.hidden = !message;
  }

  function showHeading(query) {
    heading.textContent = query ? "Results for \u201c" + query + "\u201d" : "All videos";
  }

  function showCounts() {
    var n = state.videos.length;
    var more = state.next !== null;
    countLabel.textContent = n ? n + (more ? "+" : "") + (n === 1 && !more ? " video" : " videos") : "";
    moreButton.hidden = !more;
    moreButton.textContent = "Load more videos";
    if (n) showEmpty("");
    else if (state.query) showEmpty("No videos match \u201c" + state.query + "\u201d.");
    else showEmpty("No videos yet \u2014 upload one!");
  }

  // Append the videos not yet shown (a video can move between pages while we scroll).
  function appendVideos(videos) {
    var fragment = document.createDocumentFragment();
    videos.forEach(function (video) {
      if (!video || typeof video.name !== "string" || state.names.has(video.name)) return;
      state.names.add(video.name);
      state.videos.push(video);
      fragment.appendChild(buildCard(video, state.query));
    });
    grid.appendChild(fragment);
  }

  function resetGrid(query) {
    state.query = query;
    state.videos = [];
    state.names = new Set();
    state.next = null;
    grid.replaceChildren();
    showHeading(query);
  }

  function pageUrl(query, cursor) {
    var params = new URLSearchParams();
    if (query) params.set("q", query);
    params.set("limit", String(PAGE_VIDEOS));
    if (cursor) params.set("cursor", cursor);
    return (query ? "/search?" : "/listar?") + params.toString();
  }

  // One page of the listing: {videos, next}; `next` absent (a server that does not page)
  // or not a string means there is no next page.
  function fetchPage(query, cursor) {
    if (state.inflight) state.inflight.abort();
    var controller = new AbortController();
    state.inflight = controller;
    grid.setAttribute("aria-busy", "true");
    return fetch(pageUrl(query, cursor), {
      headers: { Accept: "application/json" },
      cache: "no-store",
      signal: controller.signal,
    })
      .then(function (resp) {
        if (!resp.ok) throw new Error("HTTP " + resp.status);
        return resp.json();
      })
      .then(function (data) {
        if (state.inflight !== controller) throw new DOMException("superseded", "AbortError");
        state.inflight = null;
        grid.setAttribute("aria-busy", "false");
        return {
          videos: Array.isArray(data && data.videos) ? data.videos : [],
          next: typeof (data && data.next) === "string" ? data.next : null,
        };
      })
      .catch(function (err) {
        if (state.inflight === controller) {
          state.inflight = null;
          grid.setAttribute("aria-busy", "false");
        }
        throw err;
      });
  }

  function describe(err) {
    return err && err.message ? err.message : "network error";
  }

  function loadFirstPage(query) {
    return fetchPage(query, null).then(
      function (page) {
        resetGrid(query);
        appendVideos(page.videos);
        state.next = page.next;
        showCounts();
        watchForMore();
      },
      function (err) {
        if (err && err.name === "AbortError") return;
        resetGrid(query);
        countLabel.textContent = "";
        moreButton.hidden = true;
        showEmpty("Could not load the video list (" + describe(err) + "). Please try again.");
      }
    );
  }

  function loadMore() {
    if (state.next === null || state.inflight) return;
    var query = state.query;
    var cursor = state.next;
    moreButton.disabled = true;
    fetchPage(query, cursor)
      .then(
        function (page) {
          if (query !== state.query) return;
          appendVideos(page.videos);
          // A server handing back the cursor it was given would have us ask forever.
          state.next = page.next === cursor ? null : page.next;
          showCounts();
          watchForMore();
        },
        function (err) {
          if (err && err.name === "AbortError") return;
          moreButton.textContent = "Could not load more videos (" + describe(err) + "). Try again";
        }
      )
      .finally(function () {
        moreButton.disabled = false;
      });
  }

  // Observing again makes the observer report at once whether the button is (still) near
  // the viewport, so a short page keeps loading until the screen is full.
  var observer = new IntersectionObserver(
    function (entries) {
      if (entries.some(function (entry) { return entry.isIntersecting; })) loadMore();
    },
    { rootMargin: "0px 0px " + LOAD_AHEAD_PX + "px 0px" }
  );

  function watchForMore() {
    observer.unobserve(moreButton);
    if (state.next !== null) observer.observe(moreButton);
  }

  moreButton.addEventListener("click", loadMore);

  // ------------------------------------------------------------ search, in the URL
  function homeUrl(query) {
    return query ? "/?q=" + encodeURIComponent(query) : "/";
  }

  function queryFromUrl() {
    return (new URLSearchParams(window.location.search).get("q") || "").trim();
  }

  function search() {
    var query = searchBox.value.trim();
    history.replaceState(history.state, "", homeUrl(query));
    loadFirstPage(query);
  }

  var searchTimer = null;
  searchBox.addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, SEARCH_DEBOUNCE_MS);
  });
  searchBox.form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearTimeout(searchTimer);
    search();
  });

  // ------------------------------------------------------------ keeping the place on Back
  function savePlace() {
    var place = {
      url: window.location.pathname + window.location.search,
      query: state.query,
      videos: state.videos,
      next: state.next,
      scrollY: window.scrollY,
    };
    try {
      var text = JSON.stringify(place);
      if (text.length <= MAX_STORED_CHARS) sessionStorage.setItem(STORE_KEY, text);
      else sessionStorage.removeItem(STORE_KEY);
    } catch (e) {
      /* storage full or disabled: Back then starts from the first page */
    }
  }

  function cameBack() {
    var entries = performance.getEntriesByType ? performance.getEntriesByType("navigation") : [];
    return entries.length > 0 && entries[0].type === "back_forward";
  }

  // The stored place for this URL when the user came Back to it, else null.
  function storedPlace() {
    if (!cameBack()) return null;
    try {
      var place = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
      var here = window.location.pathname + window.location.search;
      if (place && place.url === here && Array.isArray(place.videos)) return place;
    } catch (e) {
      /* unreadable: start over */
    }
    return null;
  }

  function restorePlace(place) {
    resetGrid(typeof place.query === "string" ? place.query : "");
    appendVideos(place.videos);
    state.next = typeof place.next === "string" ? place.next : null;
    grid.setAttribute("aria-busy", "false");
    showCounts();
    window.scrollTo(0, Number(place.scrollY) || 0);
    watchForMore();
  }

  window.addEventListener("pagehide", savePlace);

  // ------------------------------------------------------------ upload
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
  function statusLine(text, ok, video) {
    var line = el("p", "status-line " + (ok ? "status-ok" : "status-error"), text);
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
        statusLine(file.name + ": The file is larger than the " + humanSize(maxUploadBytes) + " upload limit.", false);
        return next();
      }
      var label = files.length > 1 ? index + "/" + files.length : "";
      return uploadOne(file, label).then(function (result) {
        if (result.ok) {
          statusLine("Uploaded ", true, result.name);
          uploaded += 1;
          loadFirstPage(state.query);
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

  // ------------------------------------------------------------ start
  if ("scrollRestoration" in history) history.scrollRestoration = "manual";
  var place = storedPlace();
  if (place) {
    searchBox.value = place.query || "";
    restorePlace(place);
  } else {
    searchBox.value = queryFromUrl();
    loadFirstPage(searchBox.value);
  }
})();
