// Progressive enhancement only: every form works without this file.
// A pressed action button says it is working and cannot be pressed twice.
document.addEventListener("submit", function (e) {
  var form = e.target;
  if (form.method.toLowerCase() !== "post") return;
  var btn = form.querySelector("button[type=submit]");
  if (!btn) return;
  window.setTimeout(function () {
    btn.disabled = true;
    btn.textContent = "Working…";
  }, 0);
});
