// Progressive enhancement only: every page works without this script.
// A form that is being sent ignores further submissions, so a double click
// does not send it twice (the clicked button still carries its value).
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form.dataset.sending === "1") {
    event.preventDefault();
    return;
  }
  form.dataset.sending = "1";
  var buttons = form.querySelectorAll("button[type=submit]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].setAttribute("aria-disabled", "true");
  }
  // Going back to a page kept in the back/forward cache makes it usable again.
  window.addEventListener("pageshow", function () {
    delete form.dataset.sending;
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].removeAttribute("aria-disabled");
    }
  }, { once: true });
});

// A form marked data-autosubmit is sent as soon as the page is ready (the
// upstream sign-in's callback, posted again from this site); without script,
// its button does the same.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form[data-autosubmit]");
  if (form) {
    form.requestSubmit ? form.requestSubmit() : form.submit();
  }
});
