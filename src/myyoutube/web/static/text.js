// MyYoutube text helpers shared by the page scripts: sizes, durations and dates as people
// read them, element creation, search-match highlighting, and what a video's playback
// state says (mirroring web/playback.py).
//
// Loaded first with <script defer>; the others find these under window.MyYoutube.text.
// Highlighting builds text nodes and <mark> elements, never markup, so a name can hold
// anything.
"use strict";

window.MyYoutube = window.MyYoutube || {};
window.MyYoutube.text = (function () {
  var SIZE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

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

  // ------------------------------------------------------------ playback state
  // Mirrors web/playback.py: playback_of (the checked state, progress and failure),
  // state_text, badge and first_source, so the grid's cards and the watch page's polling
  // say what the server-rendered page says.
  var STATES = ["processing", "ready", "failed"];
  var MAX_FAILURE_CHARS = 300;

  function whole(v) {
    return isNumber(v) && v >= 0 ? Math.floor(v) : null;
  }

  function playback(video) {
    var state = STATES.indexOf(video.state) >= 0 ? video.state : "ready";
    var progress = state === "processing" ? whole(video.progress) : null;
    var failure = state === "failed" && typeof video.failure === "string" ? video.failure.trim().slice(0, MAX_FAILURE_CHARS) : "";
    var renditions = Array.isArray(video.renditions)
      ? video.renditions.filter(function (r) { return r && whole(r.height) && whole(r.width); })
      : [];
    var playable = typeof video.playable_original === "boolean" ? video.playable_original : !("renditions" in video);
    return {
      state: state,
      progress: progress === null ? null : Math.min(progress, 100),
      failure: failure,
      renditions: renditions,
      playableOriginal: playable,
    };
  }

  function stateText(facts) {
    if (facts.state === "processing") return facts.progress === null ? "Processing" : "Processing " + facts.progress + "%";
    if (facts.state === "failed") {
      return "This video could not be prepared for playback: " + (facts.failure || "no reason was given");
    }
    return "";
  }

  // {text, kind} for a card's badge, or null for a ready video.
  function badge(facts) {
    if (facts.state === "processing") return { text: stateText(facts), kind: "processing" };
    if (facts.state === "failed") return { text: "Failed", kind: "failed" };
    return null;
  }

  function firstSource(facts) {
    if (facts.renditions.length) return "hls";
    return facts.playableOriginal ? "progressive" : "none";
  }

  return {
    badge: badge,
    el: el,
    firstSource: firstSource,
    playback: playback,
    stateText: stateText,
    highlighted: highlighted,
    humanDate: humanDate,
    humanDuration: humanDuration,
    humanSize: humanSize,
    isNumber: isNumber,
  };
})();
