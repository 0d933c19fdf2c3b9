// Review page: keyboard shortcuts, the edit and reject panels, and the lease heartbeat.
"use strict";
(function () {
  var root = document.getElementById("review");
  if (!root) return;
  var mine = root.getAttribute("data-mine") === "true";
  var itemId = root.getAttribute("data-item-id");
  var leaseSeconds = parseInt(root.getAttribute("data-lease-seconds"), 10) || 300;
  var left = parseInt(root.getAttribute("data-lease-left"), 10) || 0;
  var lost = false;

  function go(attr) {
    var url = root.getAttribute(attr);
    if (url) window.location.href = url;
  }

  function panel(formId, toggleId, focusId) {
    var form = document.getElementById(formId);
    var toggle = document.getElementById(toggleId);
    if (!form || !toggle) return null;
    function set(open) {
      form.classList.toggle("open", open);
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      if (open) {
        var field = document.getElementById(focusId);
        if (field) field.focus();
      }
    }
    toggle.addEventListener("click", function () { set(!form.classList.contains("open")); });
    form.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { set(false); toggle.focus(); }
    });
    return set;
  }

  var openEdit = panel("edit-form", "edit-toggle", "edited-text");
  var openReject = panel("reject-form", "reject-toggle", "reject-reason");
  var editText = document.getElementById("edited-text");
  if (editText) {
    editText.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        window.modgate.submitForm("edit-form");
      }
    });
  }

  var keys = {
    j: function () { go("data-next"); },
    k: function () { go("data-prev"); },
    u: function () { window.location.href = "/queue"; },
  };
  if (mine) {
    keys.a = function () { if (!lost) window.modgate.submitForm("approve-form"); };
    keys.e = function () { if (!lost && openEdit) { if (openReject) openReject(false); openEdit(true); } };
    keys.r = function () { if (!lost && openReject) { if (openEdit) openEdit(false); openReject(true); } };
  }
  window.modgate.shortcuts(keys);

  // Replay (admins): a generation takes seconds; say so and refuse a second click meanwhile.
  var replayForm = document.getElementById("replay-form");
  if (replayForm) {
    replayForm.addEventListener("submit", function (event) {
      var button = document.getElementById("replay-btn");
      if (replayForm.getAttribute("data-busy") === "true") { event.preventDefault(); return; }
      replayForm.setAttribute("data-busy", "true");
      if (button) { button.textContent = "Replaying\u2026"; button.setAttribute("aria-busy", "true"); }
    });
    window.addEventListener("pageshow", function () { replayForm.removeAttribute("data-busy"); });
  }

  if (!mine) return;

  var shown = document.getElementById("lease-left");
  var banner = document.getElementById("lease-lost");

  function showLeft() {
    if (!shown) return;
    var s = Math.max(0, left);
    shown.textContent = Math.floor(s / 60) + ":" + ("0" + (s % 60)).slice(-2);
  }

  function loseClaim(message) {
    lost = true;
    if (banner) { banner.textContent = message; banner.hidden = false; }
    var actions = document.getElementById("actions");
    if (actions) {
      actions.classList.add("disabled");
      Array.prototype.forEach.call(actions.querySelectorAll("button, input, textarea"), function (el) {
        el.disabled = true;
      });
    }
  }

  function heartbeat() {
    if (lost) return;
    window.modgate.post("/api/items/" + encodeURIComponent(itemId) + "/lease")
      .then(function (response) {
        return response.json().then(function (body) { return { status: response.status, body: body }; });
      })
      .then(function (reply) {
        if (reply.status === 200) { left = reply.body.seconds_left; showLeft(); return; }
        if (reply.status === 401) { window.location.reload(); return; }
        loseClaim((reply.body.hint || reply.body.message || "Your claim on this item ended.") +
          " Go back to the queue to continue.");
      })
      .catch(function () { /* offline for a moment: the countdown shows how long is left */ });
  }

  setInterval(function () {
    left -= 1;
    showLeft();
    if (left <= 0 && !lost) heartbeat();
  }, 1000);
  var every = Math.max(5, Math.min(60, Math.floor(leaseSeconds / 3)));
  setInterval(heartbeat, every * 1000);
  heartbeat();
})();
