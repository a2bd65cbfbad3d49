// Refreshes the parts of a page marked data-live (every 1.5 s after the last refresh ended), only while
// the tab is visible.
// The server renders (and escapes) everything; this only swaps server-made elements by id.
(function () {
  "use strict";
  var PERIOD = 1500;  // plus the request itself: a fresh view at least every 2 s
  var timer = null;
  var busy = false;

  function schedule() {
    if (timer === null && !busy && !document.hidden) timer = setTimeout(refresh, PERIOD);
  }

  function refresh() {
    timer = null;
    if (document.hidden || !document.querySelector("[data-live]")) return;
    busy = true;
    fetch(location.href, { credentials: "same-origin", redirect: "error" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var next = el.id && fresh.getElementById(el.id);
          if (next) el.replaceWith(document.importNode(next, true));
        });
      })
      .catch(function () { /* keep the last view; try again next period */ })
      .then(function () { busy = false; schedule(); });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      if (timer !== null) { clearTimeout(timer); timer = null; }
    } else if (!busy) {
      refresh();
    }
  });
  schedule();
})();
