// Progressive enhancement only: every form also works as a plain post.
// htmx requests carry the session's CSRF token as a header (the forms carry it as a field).
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) {
    event.detail.headers["X-CSRF-Token"] = meta.getAttribute("content");
  }
});
// "select all" checkbox of a table of rows (bulk review)
document.addEventListener("change", function (event) {
  var box = event.target;
  if (!box.matches || !box.matches("input[data-select-all]")) return;
  var form = box.closest("form");
  if (!form) return;
  form.querySelectorAll('input[type="checkbox"][name="' + box.getAttribute("data-select-all") + '"]')
    .forEach(function (other) { other.checked = box.checked; });
});
