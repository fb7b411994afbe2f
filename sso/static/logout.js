// Front-channel single logout: once every SP's hidden frame has loaded (or after 5 s at
// most), go on to the SP that asked. Without JavaScript the button does the same.
document.addEventListener("DOMContentLoaded", function () {
  var frames = Array.prototype.slice.call(document.querySelectorAll("iframe.logout-frame"));
  var next = document.querySelector(".after-logout");
  if (!next) { return; }
  var done = false;
  function go() {
    if (done) { return; }
    done = true;
    if (next.tagName === "FORM") { next.submit(); } else { window.location.href = next.href; }
  }
  var pending = frames.length;
  if (pending === 0) { go(); return; }
  frames.forEach(function (frame) {
    frame.addEventListener("load", function () { pending -= 1; if (pending === 0) { go(); } });
  });
  setTimeout(go, 5000);
});
