// Live checks of a new password against the rules listed next to it (password_rules.html).
// Progressive enhancement: the server checks every rule again, and the page works without it.
// A password input opts in with data-policy-min-length, data-policy-min-classes and
// data-policy-max-length; its rules are the element "<input id>-rules" (or the one named by
// data-policy-rules); data-policy-confirm names the id of its confirmation input.
(function () {
  "use strict";

  var ANNOUNCE_DELAY_MS = 800; // let the user pause before a screen reader speaks
  var CLASSES = [/\p{Ll}/u, /[\p{Lu}\p{Lt}]/u, /\p{Nd}/u, /[^\p{Ll}\p{Lu}\p{Lt}\p{Nd}]/u];

  // Characters as the server counts them: code points of the NFC form (é typed either way is one).
  function length(value) {
    return Array.from(value.normalize("NFC")).length;
  }

  function classCount(value) {
    return CLASSES.filter(function (pattern) { return pattern.test(value); }).length;
  }

  function setUp(input) {
    var rulesId = input.getAttribute("data-policy-rules") || input.id + "-rules";
    var container = document.getElementById(rulesId);
    if (!container) { return; }
    var list = container.querySelector(".password-rules") || container;
    var status = container.querySelector("[data-policy-status]");
    var confirmId = input.getAttribute("data-policy-confirm");
    var confirm = confirmId ? document.getElementById(confirmId) : null;
    var minLength = parseInt(input.getAttribute("data-policy-min-length"), 10);
    var maxLength = parseInt(input.getAttribute("data-policy-max-length"), 10) || Infinity;
    var minClasses = parseInt(input.getAttribute("data-policy-min-classes"), 10);
    var metText = list.getAttribute("data-met-text") || "✓";
    var unmetText = list.getAttribute("data-unmet-text") || "✗";

    var checks = {
      length: function () {
        var count = length(input.value);
        return count >= minLength && count <= maxLength;
      },
      classes: function () { return classCount(input.value) >= minClasses; },
      match: function () {
        return confirm !== null && confirm.value !== "" && confirm.value === input.value;
      }
    };

    // Each live rule gets a state that screen readers read with it; server rules stay as text.
    var rules = [];
    Array.prototype.forEach.call(list.querySelectorAll("li[data-rule]"), function (item) {
      var name = item.getAttribute("data-rule");
      if (!checks[name] || (name === "match" && !confirm)) { return; }
      var state = document.createElement("span");
      state.className = "policy-sr-only policy-state";
      item.appendChild(state);
      rules.push({ name: name, item: item, state: state, label: item.textContent.trim(), met: null });
    });
    var pending = {};
    var timer = null;

    function announce() {
      timer = null;
      if (!status) { return; }
      var parts = rules.filter(function (rule) { return pending[rule.name]; }).map(function (rule) {
        return rule.label + " — " + (rule.met ? metText : unmetText);
      });
      pending = {};
      if (parts.length) { status.textContent = parts.join(". "); }
    }

    function update(event) {
      var changed = false;
      rules.forEach(function (rule) {
        var met = checks[rule.name]();
        if (met === rule.met) { return; }
        var first = rule.met === null;
        rule.met = met;
        rule.item.classList.toggle("policy-met", met);
        rule.item.classList.toggle("policy-unmet", !met);
        rule.state.textContent = " (" + (met ? metText : unmetText) + ")";
        if (!first) { pending[rule.name] = true; changed = true; }
      });
      if (event) {
        // The server's verdict on the last try no longer holds once the password changes.
        Array.prototype.forEach.call(list.querySelectorAll(".policy-broken"), function (item) {
          item.classList.remove("policy-broken");
        });
      }
      if (changed) {
        if (timer !== null) { clearTimeout(timer); }
        timer = setTimeout(announce, ANNOUNCE_DELAY_MS);
      }
    }

    input.addEventListener("input", update);
    if (confirm) { confirm.addEventListener("input", update); }
    list.classList.add("policy-live");
    update(null);
  }

  function start() {
    Array.prototype.forEach.call(
      document.querySelectorAll("input[data-policy-min-length]"), setUp
    );
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
