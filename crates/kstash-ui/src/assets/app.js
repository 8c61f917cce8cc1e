// kstash dashboard: the little script. Pages marked data-live reload their <main> every few
// seconds until the session they show ends; confirm buttons ask first. No framework, no build.
(function () {
  "use strict";
  function refresh(main) {
    var every = parseInt(main.getAttribute("data-live"), 10) || 2000;
    setTimeout(function () {
      fetch(window.location.href, { credentials: "same-origin", headers: { "x-kstash-live": "1" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (text) {
          if (!text) { refresh(main); return; }
          var doc = new DOMParser().parseFromString(text, "text/html");
          var fresh = doc.getElementById("main");
          if (!fresh) { return; }
          main.innerHTML = fresh.innerHTML;
          if (fresh.hasAttribute("data-live")) { refresh(main); } else { main.removeAttribute("data-live"); }
        })
        .catch(function () { refresh(main); });
    }, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var main = document.getElementById("main");
    if (main && main.hasAttribute("data-live")) { refresh(main); }
    document.addEventListener("submit", function (e) {
      var q = e.target.getAttribute("data-confirm");
      if (q && !window.confirm(q)) { e.preventDefault(); }
    });
    // The restore wizard: show the field of the chosen source only.
    var source = document.querySelectorAll("input[name=source]");
    function sync() {
      source.forEach(function (r) {
        var f = document.getElementById("field-" + r.value);
        if (f) { f.hidden = !r.checked; }
      });
    }
    source.forEach(function (r) { r.addEventListener("change", sync); });
    if (source.length) { sync(); }
  });
})();
