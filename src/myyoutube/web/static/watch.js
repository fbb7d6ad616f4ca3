// MyYoutube watch page: local dates, the Delete button and the edit form (the player is
// player.js's), and the notice that the video no longer exists: a page left open while
// the video is deleted elsewhere learns it from a 404 to Delete or Save, from player.js
// (its "video-gone" event, when its poll of a processing video finds the record gone), or,
// when the player fails, from asking for the video's record.
//
// The page is rendered server-side; this script only reads data-* attributes
// (the CSP forbids inline code) and writes user data with textContent.
"use strict";

(function () {
  var page = document.getElementById("watch");
  var deleteButton = document.getElementById("delete-button");
  var deleteStatus = document.getElementById("delete-status");

  // ------------------------------------------------------------ dates
  // <time data-timestamp="unix seconds">UTC fallback</time> -> local time.
  Array.prototype.forEach.call(document.querySelectorAll("time[data-timestamp]"), function (node) {
    var ts = Number(node.getAttribute("data-timestamp"));
    if (!isFinite(ts)) return;
    var d = new Date(ts * 1000);
    if (isNaN(d.getTime())) return;
    var text;
    try {
      text = d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    } catch (e) {
      text = d.toLocaleString();
    }
    node.setAttribute("title", d.toISOString());
    node.textContent = text;
  });

  // ------------------------------------------------------------ gone
  // The video was deleted: say so above the player, in place of the player's own error
  // ("cannot play" is not the reason), and take away the actions that can only fail now.
  function showGone() {
    var notice = document.getElementById("gone-notice");
    if (!notice || !notice.hidden) return;
    notice.hidden = false;
    page.setAttribute("data-gone", "true");
    ["player-status", "delete-status", "edit-status", "download"].forEach(function (id) {
      var node = document.getElementById(id);
      if (node) node.hidden = true;
    });
    if (deleteButton) deleteButton.disabled = true;
    var editForm = document.getElementById("edit-form");
    if (editForm) {
      Array.prototype.forEach.call(editForm.elements, function (control) { control.disabled = true; });
    }
  }

  // player.js found the record gone while it waited for the video to be processed.
  if (page) page.addEventListener("video-gone", showGone);

  // The player failed (a stream or playlist refused, or a picture it cannot decode): a
  // 404 to the video's record means it was deleted, anything else is the player's to say.
  var player = document.getElementById("player");
  if (page && player) {
    player.addEventListener("error", function () {
      fetch(page.getAttribute("data-video-url"), { headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (resp) {
          if (resp.status === 404) showGone();
        })
        .catch(function () {
          /* offline: the player's own message stands */
        });
    });
  }

  // ------------------------------------------------------------ delete
  function showDeleteError(message) {
    deleteStatus.textContent = message;
    deleteStatus.hidden = false;
  }

  function errorFrom(resp) {
    return resp.text().then(function (text) {
      try {
        var body = JSON.parse(text);
        if (body && typeof body.error === "string" && body.error) return body.error;
      } catch (e) {
        /* not JSON */
      }
      return "Delete failed (HTTP " + resp.status + "). Please try again.";
    });
  }

  if (page && deleteButton && deleteStatus) {
    deleteButton.addEventListener("click", function () {
      var name = page.getAttribute("data-name") || "";
      var url = page.getAttribute("data-delete-url") || "/videos/" + encodeURIComponent(name);
      if (!window.confirm("Delete \u201c" + name + "\u201d? This cannot be undone.")) return;
      deleteButton.disabled = true;
      deleteStatus.hidden = true;
      var headers = Object.assign({ Accept: "application/json" }, window.MyYoutube.session.csrfHeaders());
      fetch(url, { method: "DELETE", headers: headers })
        .then(function (resp) {
          if (resp.ok) {
            window.location.assign("/");
            return null;
          }
          if (resp.status === 404) {
            showGone();
            return null;
          }
          return errorFrom(resp).then(function (message) {
            showDeleteError(message);
            deleteButton.disabled = false;
          });
        })
        .catch(function () {
          showDeleteError("Network error \u2014 the video was not deleted.");
          deleteButton.disabled = false;
        });
    });
  }
  // ------------------------------------------------------------ edit
  // Back to the grid puts back the cards home.js stored on leaving it (sessionStorage
  // HOME_PLACE_KEY, {videos: [record, ...], ...}) instead of asking again: the edited
  // record replaces the stale one there, or the card would show the old title.
  var HOME_PLACE_KEY = "myyoutube.home";
  function updateStoredCard(video) {
    try {
      var place = JSON.parse(sessionStorage.getItem(HOME_PLACE_KEY) || "null");
      if (!place || !Array.isArray(place.videos)) return;
      place.videos = place.videos.map(function (stored) {
        return stored && stored.name === video.name ? video : stored;
      });
      sessionStorage.setItem(HOME_PLACE_KEY, JSON.stringify(place));
    } catch (e) {
      /* storage unreadable or full: Back then shows what it stored */
    }
  }

  // The details' "Who can watch" row follows a saved change of visibility.
  function showWhoCanWatch() {
    var choices = document.getElementById("edit-visibility");
    var chosen = choices.options[choices.selectedIndex];
    Array.prototype.forEach.call(document.querySelectorAll(".meta-item"), function (row) {
      var label = row.querySelector("dt");
      if (label && label.textContent === "Who can watch") row.querySelector("dd").textContent = chosen.textContent;
    });
  }

  // PATCH /videos/{name} with the form's fields; the page's title and description follow.
  var editForm = document.getElementById("edit-form");
  var editStatus = document.getElementById("edit-status");
  if (page && editForm && editStatus) {
    editForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var body = {
        title: document.getElementById("edit-title").value,
        description: document.getElementById("edit-description").value,
        visibility: document.getElementById("edit-visibility").value
      };
      var headers = Object.assign(
        { Accept: "application/json", "Content-Type": "application/json" },
        window.MyYoutube.session.csrfHeaders()
      );
      editStatus.hidden = true;
      fetch(page.getAttribute("data-edit-url"), { method: "PATCH", headers: headers, body: JSON.stringify(body) })
        .then(function (resp) {
          return resp.text().then(function (text) {
            var answer = null;
            try { answer = JSON.parse(text); } catch (e) { /* not JSON */ }
            if (resp.status === 404) {
              showGone();
              return null;
            }
            if (!resp.ok) {
              var message = answer && typeof answer.error === "string" ? answer.error : "Saving failed (HTTP " + resp.status + ").";
              throw new Error(message);
            }
            return answer || {};
          });
        })
        .then(function (video) {
          if (video === null) return; // gone
          var title = video.title || body.title;
          document.getElementById("video-title").textContent = title;
          document.title = title + " \u00b7 MyYoutube";
          var description = document.getElementById("video-description");
          description.textContent = video.description || "";
          description.hidden = !video.description;
          if (typeof video.name === "string") updateStoredCard(video);
          showWhoCanWatch();
          editStatus.className = "status";
          editStatus.textContent = "Saved.";
          editStatus.hidden = false;
        })
        .catch(function (error) {
          editStatus.className = "status status-error";
          editStatus.textContent = error.message || "Saving failed. Please try again.";
          editStatus.hidden = false;
        });
    });
  }
})();
