// Shared helpers for every page. No inline scripts anywhere: the CSP allows only files from this origin.
"use strict";
(function () {
  document.documentElement.classList.add("js");

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // True while the user is typing somewhere, so single-letter shortcuts never steal keystrokes.
  function typing(event) {
    var el = event.target;
    if (!el || !el.tagName) return false;
    var tag = el.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || el.isContentEditable;
  }

  // shortcuts({a: fn, ...}): plain keys only (no Ctrl/Alt/Meta), ignored while typing.
  function shortcuts(map) {
    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.altKey || event.metaKey || event.isComposing || typing(event)) return;
      var handler = map[event.key];
      if (handler) {
        event.preventDefault();
        handler(event);
      }
    });
  }

  // A state-changing fetch: same-origin cookies plus the CSRF token header.
  function post(url) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken(), "Accept": "application/json" },
    });
  }

  // Submits a form once: a second keypress while the first decision is on its way would only earn a
  // "someone already decided this" page.
  var submitting = false;
  function submitForm(id) {
    var form = document.getElementById(id);
    if (!form || submitting) return;
    if (form.checkValidity && !form.checkValidity()) { form.reportValidity(); return; }
    submitting = true;
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
  }
  window.addEventListener("pageshow", function () { submitting = false; });

  window.modgate = { csrfToken: csrfToken, shortcuts: shortcuts, post: post, submitForm: submitForm };

  // "n" claims the next item from any page that has the form for it.
  shortcuts({
    n: function () {
      var form = document.querySelector('form[action="/queue/claim"]');
      if (form) submitForm(form.id || (form.id = "claim-next-form"));
    },
  });
})();
