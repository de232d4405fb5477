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

  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { e.preventDefault(); }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.querySelector("table[data-live]");
    if (table) { liveQueue(table); }
    confirmForms();
  });
})();
