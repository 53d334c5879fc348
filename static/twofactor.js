// The recovery codes page's two buttons: "Download as text" saves the codes as a
// text file made in the browser (a Blob: the codes are never sent again), and
// "Print" opens the print dialog, which the print stylesheet narrows to the codes.
// Without JavaScript the buttons stay hidden and a note says to copy or print.
"use strict";

(function () {
  function codes() {
    var items = document.querySelectorAll("#recovery-codes li");
    return Array.prototype.map.call(items, function (item) {
      return item.textContent.trim();
    });
  }

  function download(button) {
    var text =
      "quartapp recovery codes for " + location.host + "\n" +
      "Each code works once. Keep them somewhere safe.\n\n" +
      codes().join("\n") + "\n";
    var url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    var link = document.createElement("a");
    link.href = url;
    link.download = button.getAttribute("data-filename") || "recovery-codes.txt";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () {
      URL.revokeObjectURL(url);
    }, 1000);
  }

  function start() {
    var actions = document.querySelector(".recovery-actions");
    var save = document.getElementById("download-codes");
    var print = document.getElementById("print-codes");
    if (!actions || !save || !print) {
      return;
    }
    save.addEventListener("click", function () {
      download(save);
    });
    print.addEventListener("click", function () {
      window.print();
    });
    actions.hidden = false;
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
