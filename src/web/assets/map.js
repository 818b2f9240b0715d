// Map hover: names the place under the pointer beside the map and outlines it. The map and
// its table work without this script (the table names every place); it only adds the readout.
"use strict";
(function () {
  var maps = document.querySelectorAll(".map");
  Array.prototype.forEach.call(maps, function (map) {
    var readout = map.parentNode.querySelector(".map-readout");
    var shown = null;
    function show(path) {
      if (shown) {
        shown.classList.remove("hovered");
      }
      shown = path;
      if (!path) {
        return;
      }
      path.classList.add("hovered");
      var title = path.querySelector("title");
      if (readout && title) {
        readout.textContent = title.textContent;
      }
    }
    map.addEventListener("mouseover", function (event) {
      var path = event.target.closest("path[data-code]");
      if (path) {
        show(path);
      }
    });
    map.addEventListener("mouseleave", function () {
      show(null);
    });
  });
})();
