// Submit the protocol's POST form at once; the button stays for browsers without JavaScript.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form.autosubmit");
  if (form) { form.submit(); }
});
