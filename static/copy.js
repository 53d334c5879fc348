// Copy buttons: a <button data-copy-from="ID" hidden> copies the text of the element
// with that id (a list: one item a line) to the clipboard, and then says "Copied",
// on the button and in the live region named by its data-copy-status. Without
// JavaScript the buttons stay hidden and the text can be selected as always.
"use strict";

(function () {
  function textOf(source) {
    var items = source.querySelectorAll("li");
    if (items.length) {
      return Array.prototype.map.call(items, function (item) {
        return item.textContent.trim();
      }).join("\n");
    }
    return source.textContent.trim();
  }

  // Where the Clipboard API is missing or refused (an old browser, a page not
  // served securely): the older copy command, from a text box made for it.
  function copyByCommand(text) {
    var box = document.createElement("textarea");
    box.value = text;
    box.setAttribute("readonly", "");
    box.className = "visually-hidden";
    document.body.appendChild(box);
    box.select();
    var done = false;
    try {
      done = document.execCommand("copy");
    } catch (error) {
      done = false;
    }
    box.remove();
    return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && navigator.clipboard.writeText) {
      return navigator.clipboard.writeText(text).catch(function () {
        return copyByCommand(text);
      });
    }
    return copyByCommand(text);
  }

  function setup(button) {
    var source = document.getElementById(button.getAttribute("data-copy-from"));
    if (!source) {
      return;
    }
    var status = document.getElementById(button.getAttribute("data-copy-status") || "");
    var label = button.textContent;
    var reset = null;

    function say(buttonText, message) {
      button.textContent = buttonText;
      if (status) {
        status.textContent = message;
      }
    }

    button.addEventListener("click", function () {
      clearTimeout(reset);
      copy(textOf(source)).then(
        function () {
          say("Copied", button.getAttribute("data-copied") || "Copied.");
        },
        function () {
          say(label, "Your browser did not let this page copy. Select the text and copy it.");
        }
      ).then(function () {
        reset = setTimeout(function () {
          button.textContent = label;
        }, 5000);
      });
    });
    button.hidden = false;
  }

  function start() {
    var buttons = document.querySelectorAll("button[data-copy-from]");
    Array.prototype.forEach.call(buttons, setup);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
