// Interlock console: live queue (server-sent events) and confirm dialogs. No inline script anywhere
// (the Content-Security-Policy forbids it); every value shown was escaped by the server.
"use strict";
(function () {
  function liveQueue(table) {
    var url = table.getAttribute("data-live");
    var body = document.getElementById("rows");
    var count = document.getElementById("count");
    var pending = false, again = false;
    function reload() {
      if (pending) { again = true; return; }  // one fetch at a time; a change during it fetches once more
      pending = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.status === 401) { window.location.reload(); }
          if (r.ok && count) { count.textContent = r.headers.get("X-Interlock-Pending") || count.textContent; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          pending = false;
          if (html !== null) {
            body.innerHTML = html;  // server-rendered, escaped rows
            body.setAttribute("data-at", String(Date.now()));
            table.setAttribute("data-updated", String(Date.now()));
          }
          if (again) { again = false; reload(); }
        })
        .catch(function () { pending = false; if (again) { again = false; reload(); } });
    }
    var source = new EventSource("/ui/events");
    source.addEventListener("approvals", reload);
    source.addEventListener("open", function () { table.setAttribute("data-connected", "1"); });
  }

  function watchRequest(watch) {
    // A review page: when any request changes, ask whether this one did; if so, say so (never reload
    // by itself: the reader may be typing a reason).
    var url = watch.getAttribute("data-watch");
    var shown = watch.getAttribute("data-version");
    var banner = document.getElementById("changed");
    var source = new EventSource("/ui/events");
    source.addEventListener("open", function () { watch.setAttribute("data-connected", "1"); });
    source.addEventListener("approvals", function () {
      fetch(url, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (now) {
          if (now !== null && now !== shown && banner) { banner.hidden = false; }
          watch.setAttribute("data-checked", String(Number(watch.getAttribute("data-checked") || 0) + 1));
        })
        .catch(function () {});
    });
  }

  function followRollout(main) {
    // A rollout's progress page: on each `rollouts` event (any rollout, any replica) fetch this page again
    // and put its <main> in place, at most once a second (a wave of 100 targets is 100 events); stop
    // once the page no longer says the rollout runs.
    var source = new EventSource("/ui/events?on=rollouts");
    var pending = false, again = false, last = 0;
    function mark(name) { main.setAttribute(name, String(Number(main.getAttribute(name) || 0) + 1)); }
    function reload() {
      var live = document.getElementById("live");
      if (!live) { source.close(); return; }
      if (pending) { again = true; return; }
      var wait = Math.max(0, last + 1000 - Date.now());
      pending = true;
      window.setTimeout(function () {
        last = Date.now();
        fetch(live.getAttribute("data-live-rollout"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
          .then(function (r) {
            if (r.status === 401) { window.location.reload(); }
            return r.ok ? r.text() : null;
          })
          .then(function (html) {
            pending = false;
            if (html !== null) {
              var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
              if (fresh) { main.innerHTML = fresh.innerHTML; mark("data-reloaded"); }  // server-rendered, escaped
            }
            if (again) { again = false; reload(); }
          })
          .catch(function () { pending = false; if (again) { again = false; reload(); } });
      }, wait);
    }
    source.addEventListener("open", function () { main.setAttribute("data-connected", "1"); });
    source.addEventListener("rollouts", reload);
    window.setInterval(reload, 15000);  // a change missed while the stream reconnected still shows
  }

  function timeLeft(seconds) {  // as the server writes it (render.time_left)
    if (seconds <= 0) { return "expired"; }
    if (seconds < 60) { return seconds + "s"; }
    if (seconds < 3600) { return Math.floor(seconds / 60) + "m " + String(seconds % 60).padStart(2, "0") + "s"; }
    return Math.floor(seconds / 3600) + "h " + String(Math.floor(seconds % 3600 / 60)).padStart(2, "0") + "m";
  }

  function countDown(body) {
    body.setAttribute("data-at", String(Date.now()));
    window.setInterval(function () {
      var gone = Math.floor((Date.now() - Number(body.getAttribute("data-at"))) / 1000);
      body.querySelectorAll("td[data-left]").forEach(function (cell) {
        cell.textContent = timeLeft(Number(cell.getAttribute("data-left")) - gone);
      });
    }, 1000);
  }

  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { e.preventDefault(); }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.querySelector("table[data-live]");
    if (table) { liveQueue(table); countDown(document.getElementById("rows")); }
    var watch = document.getElementById("watch");
    if (watch) { watchRequest(watch); }
    if (document.getElementById("live")) { followRollout(document.querySelector("main")); }
    confirmForms();
  });
})();
