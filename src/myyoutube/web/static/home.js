// MyYoutube home page: the video grid a page at a time (a badge on each card still
// processing, kept up to date, or failed), and search kept in the URL with the matched
// words highlighted (uploads are upload.js's).
//
// Loaded with <script defer> after text.js (the CSP forbids inline code). All user data is
// put into the DOM with textContent / createTextNode / setAttribute, never as markup.
//
// The grid asks /listar (or /search?q=) for PAGE_VIDEOS videos and follows the answer's
// `next` cursor when the "Load more" button nears the viewport (an IntersectionObserver)
// or is clicked; a server that does not page sends no `next`, which means "no more".
// Leaving the page stores what was loaded and the scroll position in sessionStorage; Back
// (a back_forward navigation of the same URL) puts both back instead of starting over
// (watch.js replaces a record there when its video is edited).
// Cards whose titles repeat (hevc.mkv and hevc.mp4 are both "hevc") show the video's
// name under the title, so they can be told apart by eye and by a screen reader alike.
"use strict";

(function () {
  var PAGE_VIDEOS = 50;
  var SEARCH_DEBOUNCE_MS = 150;
  // Start fetching the next page while the button is still this far below the viewport.
  var LOAD_AHEAD_PX = 800;
  var STORE_KEY = "myyoutube.home";
  // sessionStorage holds a few MB per site; a longer list is simply not kept for Back.
  var MAX_STORED_CHARS = 2000000;

  var text = window.MyYoutube.text;
  var el = text.el;
  var heading = document.getElementById("page-title");
  var grid = document.getElementById("videos");
  var emptyState = document.getElementById("empty-state");
  var countLabel = document.getElementById("video-count");
  var moreButton = document.getElementById("load-more");
  // The page has the upload form only for who may upload: nobody else is told to.
  var canUpload = document.getElementById("upload-form") !== null;
  var searchBox = document.getElementById("search");

  // ------------------------------------------------------------ cards
  function placeholder() {
    var box = el("div", "thumb-placeholder");
    box.setAttribute("aria-hidden", "true");
    return box;
  }

  // The state badge of a processing or failed video (none once ready), replacing any.
  function showBadge(thumb, video) {
    var old = thumb.querySelector(".state-badge");
    if (old) old.remove();
    var badge = text.badge(text.playback(video));
    if (badge) thumb.appendChild(el("span", "badge state-badge state-" + badge.kind, badge.text));
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
    if (text.isNumber(video.duration_s) && video.duration_s >= 0) {
      thumb.appendChild(el("span", "badge", text.humanDuration(video.duration_s)));
    }
    showBadge(thumb, video);
    return thumb;
  }

  function metaText(video) {
    var parts = [];
    if (text.isNumber(video.size)) parts.push(text.humanSize(video.size));
    var date = text.humanDate(video.uploaded_at);
    if (date) parts.push(date);
    if (text.isNumber(video.width) && text.isNumber(video.height) && video.width > 0 && video.height > 0) {
      parts.push(Math.floor(video.width) + "\u00d7" + Math.floor(video.height));
    }
    if (text.isNumber(video.views) && video.views >= 0) {
      parts.push(video.views.toLocaleString() + (video.views === 1 ? " view" : " views"));
    }
    if (video.visibility !== "public") {
      var who = visibilityLabel(video.visibility);
      if (who) parts.push(who);
    }
    return parts.join(" \u00b7 ");
  }

  // "Only me" / "Anyone with the link", in the upload form's words. Only an owner or an
  // admin is shown a video that is not public, and their page has that form.
  function visibilityLabel(value) {
    var choices = document.getElementById("visibility");
    var options = choices ? Array.prototype.slice.call(choices.options) : [];
    var match = options.filter(function (option) {
      return option.value === value;
    })[0];
    return match ? match.textContent : "";
  }

  function titleOf(video) {
    return typeof video.title === "string" && video.title.trim() ? video.title : video.name;
  }

  function buildCard(video, query) {
    var encoded = encodeURIComponent(video.name);
    var card = el("a", "video-card");
    card.setAttribute("href", "/watch/" + encoded);
    card.setAttribute("data-name", video.name);
    card.setAttribute("data-state", text.playback(video).state);
    card.setAttribute("title", video.name);
    card.appendChild(buildThumb(video, encoded));
    var body = el("div", "card-body");
    var title = el("h3", "card-title");
    title.dir = "auto"; // its own direction, isolated from the card: see watch.html
    title.appendChild(text.highlighted(titleOf(video), query));
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
    else showEmpty(canUpload ? "No videos yet \u2014 upload one!" : "No videos yet.");
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
    nameRepeatedTitles();
    watchBadges();
  }

  // Under every title shown by more than one card (compared as a person reads them:
  // case and surrounding spaces aside), the card's name, the one thing that differs.
  function nameRepeatedTitles() {
    var cards = Array.prototype.slice.call(grid.querySelectorAll("a.video-card"));
    var key = function (card) {
      return card.querySelector(".card-title").textContent.trim().toLowerCase();
    };
    var counts = new Map();
    cards.forEach(function (card) {
      counts.set(key(card), (counts.get(key(card)) || 0) + 1);
    });
    cards.forEach(function (card) {
      var title = card.querySelector(".card-title");
      var name = card.getAttribute("data-name");
      if (counts.get(key(card)) < 2 || card.querySelector(".card-name") || title.textContent === name) return;
      var line = el("p", "card-name");
      line.dir = "auto";
      line.appendChild(text.highlighted(name, state.query));
      title.after(line);
    });
  }

  // ------------------------------------------------------------ processing badges
  // While cards show "Processing N%", their records are asked for again every
  // BADGE_POLL_MS (GET /videos/{name}), at most MAX_POLLED_CARDS at a time, so the
  // percentage moves and the badge goes when the video is ready, without a reload.
  var BADGE_POLL_MS = 3000;
  var MAX_POLLED_CARDS = 12;
  var badgeTimer = null;

  function processingCards() {
    return Array.prototype.slice.call(grid.querySelectorAll('a.video-card[data-state="processing"]'), 0, MAX_POLLED_CARDS);
  }

  function refreshCard(card) {
    return fetch("/videos/" + encodeURIComponent(card.getAttribute("data-name")), {
      headers: { Accept: "application/json" },
      cache: "no-store",
    })
      .then(function (resp) {
        if (resp.status === 404) card.setAttribute("data-state", "gone");
        return resp.ok ? resp.json() : null;
      })
      .then(function (video) {
        if (!video) return;
        card.setAttribute("data-state", text.playback(video).state);
        showBadge(card.querySelector(".thumb"), video);
      })
      .catch(function () {
        /* the next round asks again */
      });
  }

  function watchBadges() {
    if (badgeTimer !== null || processingCards().length === 0) return;
    badgeTimer = setTimeout(function () {
      Promise.all(processingCards().map(refreshCard)).then(function () {
        badgeTimer = null;
        watchBadges();
      });
    }, BADGE_POLL_MS);
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
        if (!resp.ok) return refusal(resp);
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

  // A refused request: the server's sentence, when it sent one, says what to change
  // (a 4xx is not cured by trying again); else the status alone.
  function refusal(resp) {
    return resp
      .json()
      .catch(function () {
        return null;
      })
      .then(function (body) {
        var err = new Error("HTTP " + resp.status);
        if (body && typeof body.error === "string" && body.error) err.sentence = body.error;
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
        showEmpty(
          err && err.sentence
            ? err.sentence
            : "Could not load the video list (" + describe(err) + "). Please try again."
        );
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

  document.addEventListener("myyoutube:uploaded", function () {
    loadFirstPage(state.query);
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
