// Audit page: verify the hash chain on request (it reads the whole log, so not on every page view).
"use strict";
(function () {
  var box = document.getElementById("verify");
  if (!box) return;
  var text = document.getElementById("verify-text");
  var button = document.getElementById("verify-btn");

  // Without an anchor, a log whose newest events were deleted (or rewritten) still verifies: say so.
  function anchorNote(r) {
    if (r.anchor_id) return "Contains the server's last anchor (#" + r.anchor_id + ").";
    if (r.anchoring) return "No anchor recorded yet: truncation would not show.";
    return "Anchoring is off (no audit_anchor_key): truncation would not show.";
  }

  function verify() {
    box.className = "verify card checking";
    text.textContent = "Verifying the chain…";
    fetch(box.getAttribute("data-url"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (r) {
        if (r.ok) {
          box.className = "verify card ok";
          text.textContent = "Chain intact: " + r.checked + " events verified" +
            (r.head_id ? " (head #" + r.head_id + ")" : "") + ". " + anchorNote(r);
        } else {
          box.className = "verify card bad";
          text.textContent = "Chain broken at event #" + r.first_bad_id + ": " + r.problem;
        }
      })
      .catch(function () {
        box.className = "verify card bad";
        text.textContent = "Could not verify the chain (server unreachable).";
      });
  }

  button.addEventListener("click", verify);
  verify();
})();
