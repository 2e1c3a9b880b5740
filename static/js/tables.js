// A table wider than the page scrolls sideways within itself (console.css): one that does is
// given a place in the tab order, so a keyboard can scroll it too, and is named for a screen
// reader by the heading before it. Tables that fit are left out of the tab order.
(function () {
  function name(table) {
    var caption = table.querySelector("caption");
    if (caption) return caption.textContent.trim();
    for (var el = table.previousElementSibling; el; el = el.previousElementSibling) {
      if (/^H[1-6]$/.test(el.tagName)) return el.textContent.trim();
    }
    return "";
  }
  function mark() {
    document.querySelectorAll("main table").forEach(function (table) {
      var scrolls = table.scrollWidth > table.clientWidth + 1;
      if (scrolls && !table.hasAttribute("tabindex")) {
        table.setAttribute("tabindex", "0");
        table.dataset.scrollMarked = "1";
        if (!table.hasAttribute("aria-label") && name(table)) table.setAttribute("aria-label", name(table));
      } else if (!scrolls && table.dataset.scrollMarked) {
        table.removeAttribute("tabindex");
        delete table.dataset.scrollMarked;
      }
    });
  }
  document.addEventListener("DOMContentLoaded", mark);
  window.addEventListener("resize", mark);
})();
