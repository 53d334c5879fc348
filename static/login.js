// The small helpers of the login and password pages. A page works the same
// without them: the error summary and first field also carry the autofocus
// attribute, and each password field is a plain password field.
"use strict";

(function () {
  // Move focus to the error summary (or the form-level error) after a failed
  // submit, for browsers that ignore autofocus on a non-form element.
  function focusOnLoad() {
    var target = document.querySelector("[data-focus-on-load]");
    if (target && document.activeElement !== target) {
      target.focus();
    }
  }

  // A link in the error summary focuses its field and shows the field's label
  // above it, as GOV.UK's error summary does.
  function linkErrorSummary() {
    var links = document.querySelectorAll(".error-summary a[href^='#']");
    Array.prototype.forEach.call(links, function (link) {
      link.addEventListener("click", function (event) {
        var input = document.getElementById(link.getAttribute("href").slice(1));
        if (!input) {
          return;
        }
        event.preventDefault();
        var label = document.querySelector("label[for='" + input.id + "']");
        (label || input).scrollIntoView();
        input.focus({ preventScroll: true });
      });
    });
  }

  // A "Show" button beside each password box and a hint when Caps Lock is on.
  // The button's accessible name says which box: data-show-name, else "password".
  function enhancePassword(input) {
    var name = input.getAttribute("data-show-name") || "password";
    // Moving the input into its row takes the focus away (autofocus on the
    // password page's first box): give it back.
    var focused = document.activeElement === input;
    var row = document.createElement("div");
    row.className = "password-row";
    input.parentNode.insertBefore(row, input);
    row.appendChild(input);
    if (focused) {
      input.focus();
    }

    var toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "password-toggle";
    toggle.textContent = "Show";
    toggle.setAttribute("aria-controls", input.id);
    toggle.setAttribute("aria-label", "Show " + name);
    toggle.addEventListener("click", function () {
      var shown = input.type === "password";
      input.type = shown ? "text" : "password";
      toggle.textContent = shown ? "Hide" : "Show";
      toggle.setAttribute("aria-label", (shown ? "Hide " : "Show ") + name);
    });
    row.appendChild(toggle);

    var hint = document.createElement("p");
    hint.className = "capslock-hint";
    hint.id = input.id + "-capslock";
    hint.hidden = true;
    hint.setAttribute("aria-live", "polite");
    hint.textContent = "Caps Lock is on.";
    row.parentNode.insertBefore(hint, row.nextSibling);

    function checkCapsLock(event) {
      if (typeof event.getModifierState === "function") {
        hint.hidden = !event.getModifierState("CapsLock");
      }
    }
    input.addEventListener("keydown", checkCapsLock);
    input.addEventListener("keyup", checkCapsLock);
    input.addEventListener("blur", function () {
      hint.hidden = true;
    });

    // Never submit with the password shown: a browser would offer to remember
    // it as text, and the next person at the screen would see it.
    if (input.form) {
      input.form.addEventListener("submit", function () {
        input.type = "password";
      });
    }
  }

  function enhancePasswords() {
    var inputs = document.querySelectorAll("input.password-input");
    Array.prototype.forEach.call(inputs, enhancePassword);
  }

  function start() {
    enhancePasswords();
    linkErrorSummary();
    focusOnLoad();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
