// MyYoutube watch page player: adaptive HLS with hls.js (vendored), a quality menu, the
// progressive fallback, the player's shape, processing state and page-level keys.
//
// Loaded with <script defer> after vendor/hls.min.js and text.js (the CSP forbids inline
// code); everything it needs is in #watch's data-* attributes, rendered by pages.py from
// the video's record (web/playback.py decides data-source):
//
// * "hls": /hls/{name}/master.m3u8 through hls.js when the browser has Media Source
//   Extensions (Hls.isSupported()), else the progressive /stream/{name} (the best
//   rendition, as one MP4).
// * "progressive": no rendition yet, but the original plays: /stream/{name}.
// * "none": nothing to play yet (or ever, when failed).
//
// While the video is processing the page polls GET /videos/{name} every data-poll-ms and
// shows "Processing N%"; once it is ready (or first becomes playable) the player switches
// to the best source without reloading the page, keeping the position. #watch's
// data-playing says what is playing ("hls", "progressive" or "none").
//
// Keys (not while typing in a form field, nor with Ctrl/Alt/Meta): k or space play/pause,
// j / l back / forward 10 s, Left / Right 5 s, f fullscreen, m mute; the same on a
// focused <video>, whose own controls then do not see the key.
"use strict";

(function () {
  var page = document.getElementById("watch");
  var video = document.getElementById("player");
  if (!page || !video) return;
  var text = window.MyYoutube.text;
  var frame = document.getElementById("player-frame");
  var playerStatus = document.getElementById("player-status");
  var stateBox = document.getElementById("video-state");
  var stateLabel = document.getElementById("video-state-text");
  var progressBar = document.getElementById("video-progress");
  var qualityRow = document.getElementById("quality-row");
  var quality = document.getElementById("quality");

  var SHORT_SEEK_S = 5;
  var LONG_SEEK_S = 10;
  // The player takes at most this share of the window's height (app.css says the same).
  var MAX_HEIGHT_VH = 75;
  var AUTO = "-1"; // hls.js: currentLevel -1 is automatic quality
  var pollMs = Number(page.getAttribute("data-poll-ms")) || 2000;

  var hls = null; // the hls.js instance while HLS plays through MSE
  var playing = "none";
  var facts = null; // the last record's playback facts (text.playback), once polled

  // ------------------------------------------------------------ shape
  // The box takes the picture's shape: as wide as the page allows, but no wider than
  // makes it MAX_HEIGHT_VH tall, so a portrait video stays portrait and narrow.
  function fitShape(width, height) {
    if (!(width > 0 && height > 0)) return;
    video.style.aspectRatio = width + " / " + height;
    frame.style.maxWidth = "calc(" + MAX_HEIGHT_VH + "vh * " + width + " / " + height + ")";
  }

  fitShape(Number(video.getAttribute("width")), Number(video.getAttribute("height")));
  video.addEventListener("loadedmetadata", function () {
    if (!video.hasAttribute("width")) fitShape(video.videoWidth, video.videoHeight);
  });

  // ------------------------------------------------------------ errors
  function showError(message) {
    playerStatus.textContent = message;
    playerStatus.hidden = !message;
  }

  video.addEventListener("error", function () {
    if (playing === "none" || !video.error) return;
    var code = video.error.code;
    if (code === 4) showError("Your browser cannot play this video. Use Download to watch it in another player.");
    else if (code === 2) showError("A network error stopped the video. Reload the page to try again.");
    else showError("This video could not be played.");
  });

  // ------------------------------------------------------------ quality menu
  function option(value, label) {
    var node = text.el("option", "", label);
    node.value = value;
    return node;
  }

  // A rung is named by its picture's short side, as the ladder names it: a portrait
  // 360x640 rendition is "360p", not "640p".
  function rungName(level) {
    var side = level.width > 0 ? Math.min(level.width, level.height) : level.height;
    return side + "p";
  }

  // Auto names the rung it is on: "Auto (360p)".
  function labelAuto() {
    var auto = quality.querySelector('option[value="' + AUTO + '"]');
    var level = hls && hls.levels[hls.currentLevel];
    if (auto) auto.textContent = hls && hls.autoLevelEnabled && level ? "Auto (" + rungName(level) + ")" : "Auto";
  }

  function buildMenu() {
    quality.replaceChildren(option(AUTO, "Auto"));
    hls.levels
      .map(function (level, index) { return { level: level, index: index }; })
      .sort(function (a, b) { return b.level.height - a.level.height; })
      .forEach(function (rung) { quality.appendChild(option(String(rung.index), rungName(rung.level))); });
    quality.value = AUTO;
    qualityRow.hidden = hls.levels.length < 2;
    labelAuto();
  }

  quality.addEventListener("change", function () {
    if (hls) hls.currentLevel = Number(quality.value); // an immediate switch; -1 is Auto
    labelAuto();
  });

  // ------------------------------------------------------------ sources
  function setPlaying(what) {
    playing = what;
    page.setAttribute("data-playing", what);
  }

  function stopAll() {
    if (hls) {
      hls.destroy();
      hls = null;
    }
    qualityRow.hidden = true;
    video.removeAttribute("src");
    video.load();
  }

  function playProgressive(startAt) {
    stopAll();
    setPlaying("progressive");
    video.src = page.getAttribute("data-stream-url");
    if (startAt > 0) video.currentTime = startAt;
  }

  // hls.js fatal errors: retry the network once, recover the decoder once, then fall
  // back to the progressive stream (hls.js's own recovery sequence, shortened). A
  // playlist or segment answering 404 first makes us ask for the video's record, once:
  // the video may have been deleted or made private meanwhile, and hls.js would retry
  // the segment for about a minute, the spinner turning, before its error is fatal.
  function onHlsError(retries) {
    return function (event, data) {
      if (data.response && data.response.code === 404 && !retries.askedRecord) {
        retries.askedRecord = true;
        lookForGone();
      }
      if (!data.fatal) return;
      if (data.type === window.Hls.ErrorTypes.NETWORK_ERROR && !retries.network) {
        retries.network = true;
        hls.startLoad();
      } else if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR && !retries.media) {
        retries.media = true;
        hls.recoverMediaError();
      } else {
        playProgressive(video.currentTime);
      }
    };
  }

  function playHls(startAt) {
    stopAll();
    var Hls = window.Hls;
    var url = page.getAttribute("data-hls-url");
    // Without MSE (hls.js also takes Safari's ManagedMediaSource), the progressive
    // stream, not the browser's own HLS: that plays everywhere, and the same way.
    if (!(Hls && Hls.isSupported())) {
      playProgressive(startAt);
      return;
    }
    // No worker: hls.js would start one from a blob: URL, which the CSP refuses.
    hls = new Hls({ enableWorker: false, capLevelToPlayerSize: true, startPosition: startAt > 0 ? startAt : -1 });
    hls.on(Hls.Events.MANIFEST_PARSED, buildMenu);
    hls.on(Hls.Events.LEVEL_SWITCHED, labelAuto);
    hls.on(Hls.Events.ERROR, onHlsError({}));
    setPlaying("hls");
    hls.loadSource(url);
    hls.attachMedia(video);
  }

  // Start `source`, or switch to it keeping the position and whether it was playing.
  function start(source) {
    var at = video.currentTime || 0;
    var wasPlaying = playing !== "none" && !video.paused;
    if (source === "hls") playHls(at);
    else if (source === "progressive") playProgressive(at);
    else return;
    showError("");
    if (wasPlaying) {
      video.addEventListener("canplay", function () { video.play().catch(function () {}); }, { once: true });
    }
  }

  // ------------------------------------------------------------ processing state
  function showState(current) {
    var sentence = text.stateText(current);
    stateBox.className = "video-state state-" + current.state;
    stateLabel.textContent = sentence;
    stateBox.hidden = !sentence;
    progressBar.hidden = current.state !== "processing";
    progressBar.value = current.progress || 0;
    page.setAttribute("data-state", current.state);
  }

  // What to play after a poll: anything playable when nothing plays yet; HLS once the
  // ladder is complete (a viewer watching the original is moved over only then, once).
  function follow(current) {
    var best = text.firstSource(current);
    if (best === "none") return;
    if (playing === "none") start(best);
    else if (current.state !== "processing" && best === "hls" && playing === "progressive") start("hls");
    else if (current.state !== "processing" && hls && hls.levels.length < current.renditions.length) start("hls");
  }

  // The video's record, or null if it could not be had now; rejects with "gone" when
  // the record answers 404 (deleted, or no longer one this visitor may see).
  function fetchRecord() {
    return fetch(page.getAttribute("data-video-url"), { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (resp) {
        if (resp.status === 404) throw new Error("gone");
        return resp.ok ? resp.json() : null;
      });
  }

  // The video is gone: stop playing (hls.js would go on retrying) and say so.
  function gone() {
    stopAll();
    setPlaying("none");
    showError("This video no longer exists.");
    // watch.js turns this into its notice and takes the page's actions away.
    page.dispatchEvent(new CustomEvent("video-gone"));
  }

  function lookForGone() {
    fetchRecord().catch(function (err) {
      if (err && err.message === "gone") gone();
    });
  }

  function poll() {
    fetchRecord()
      .then(function (record) {
        if (record) {
          facts = text.playback(record);
          showState(facts);
          follow(facts);
        }
        if (!facts || facts.state === "processing") setTimeout(poll, pollMs);
      })
      .catch(function (err) {
        if (err && err.message === "gone") gone();
        else setTimeout(poll, pollMs);
      });
  }

  // ------------------------------------------------------------ keys
  var TYPING = /^(INPUT|TEXTAREA|SELECT)$/;
  var ACTIVATES_ON_SPACE = /^(BUTTON|SUMMARY|A)$/;

  function seekBy(seconds) {
    if (!isFinite(video.duration)) return;
    video.currentTime = Math.min(Math.max(0, video.currentTime + seconds), video.duration);
  }

  function togglePlay() {
    if (video.paused) video.play().catch(function () {});
    else video.pause();
  }

  function toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen().catch(function () {});
    else if (video.requestFullscreen) video.requestFullscreen().catch(function () {});
  }

  var ACTIONS = {
    k: togglePlay,
    " ": togglePlay,
    j: function () { seekBy(-LONG_SEEK_S); },
    l: function () { seekBy(LONG_SEEK_S); },
    ArrowLeft: function () { seekBy(-SHORT_SEEK_S); },
    ArrowRight: function () { seekBy(SHORT_SEEK_S); },
    f: toggleFullscreen,
    m: function () { video.muted = !video.muted; },
  };

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.altKey || event.metaKey) return;
    var target = event.target;
    if (target && (TYPING.test(target.tagName) || target.isContentEditable)) return;
    if (event.key === " " && target && ACTIVATES_ON_SPACE.test(target.tagName)) return;
    var key = event.key.length === 1 && event.key !== " " ? event.key.toLowerCase() : event.key;
    var action = ACTIONS[key];
    if (!action) return;
    // Keeps the page from scrolling on space and the arrows, and a focused <video>'s own
    // controls (which listen on the video itself, after this capturing listener) from
    // acting on the key a second time, their own way (Chrome's arrows step 1%).
    event.preventDefault();
    if (target === video) event.stopPropagation();
    action();
  }, true);

  // ------------------------------------------------------------ start
  setPlaying("none");
  start(page.getAttribute("data-source"));
  if (page.getAttribute("data-state") === "processing") setTimeout(poll, pollMs);
})();
