// "All shown" ticks every pending approval on the page for the bulk buttons (including cards
// that live updates add later while it stays ticked). Without this script, tick them one by one.
(function () {
  "use strict";
  const all = document.getElementById("pick-all");
  if (!all) return;
  function apply() {
    document.querySelectorAll("input.pick-one:not(:disabled)").forEach((box) => (box.checked = all.checked));
  }
  all.addEventListener("change", apply);
  document.addEventListener("bm:updated", () => {
    if (all.checked) apply();
  });
})();
