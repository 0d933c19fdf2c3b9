// Queue page: poll the rows partial so new items appear without a reload; j/k/Enter to move and open.
"use strict";
(function () {
  var live = document.getElementById("live");
  if (!live) return;
  var url = live.getAttribute("data-poll-url");
  var seconds = parseInt(live.getAttribute("data-poll-seconds"), 10) || 5;
  var updated = document.getElementById("updated");
  var selectedId = null;
  var known = null;

  function rows() {
    return Array.prototype.slice.call(live.querySelectorAll("tr.item-row"));
  }

  function ids() {
    return rows().map(function (r) { return r.getAttribute("data-id"); });
  }

  function select(id, scroll) {
    selectedId = id;
    rows().forEach(function (r) {
      var on = r.getAttribute("data-id") === id;
      r.classList.toggle("selected", on);
      r.setAttribute("aria-selected", on ? "true" : "false");
      if (on && scroll) r.scrollIntoView({ block: "nearest" });
    });
  }

  function move(step) {
    var list = ids();
    if (!list.length) return;
    var at = list.indexOf(selectedId);
    var next = at < 0 ? (step > 0 ? 0 : list.length - 1) : Math.min(list.length - 1, Math.max(0, at + step));
    select(list[next], true);
  }

  function open() {
    var row = live.querySelector('tr.item-row[data-id="' + (selectedId || "") + '"]');
    if (row) window.location.href = row.getAttribute("data-href");
  }

  function markNew() {
    var now = ids();
    if (known !== null) {
      rows().forEach(function (r) {
        if (known.indexOf(r.getAttribute("data-id")) < 0) r.classList.add("new");
      });
    }
    known = now;
  }

  function refresh() {
    if (document.hidden) return;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.status === 401 || response.redirected) { window.location.reload(); return null; }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        if (html === null) return;
        // The partial is rendered by the server with every value escaped; parse it inertly and swap.
        var doc = new DOMParser().parseFromString("<div>" + html + "</div>", "text/html");
        live.replaceChildren.apply(live, Array.prototype.slice.call(doc.body.firstChild.childNodes));
        markNew();
        if (selectedId) select(selectedId, false);
        if (updated) updated.textContent = "Updated " + new Date().toLocaleTimeString();
      })
      .catch(function () {
        if (updated) updated.textContent = "Could not refresh; retrying…";
      });
  }

  live.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest("tr.item-row");
    if (row && !event.target.closest("a")) window.location.href = row.getAttribute("data-href");
  });

  markNew();
  window.modgate.shortcuts({
    j: function () { move(1); },
    k: function () { move(-1); },
    Enter: open,
    o: open,
  });
  setInterval(refresh, seconds * 1000);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
})();
