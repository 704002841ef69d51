// One date format everywhere: each <time datetime="ISO"> the server rendered (dashboard's `when` filter, text
// "YYYY-MM-DD HH:MM UTC") is shown relative ("3 minutes ago"), with the exact time in the viewer's time zone in
// its tooltip. Re-run every minute and on whatever a live update puts into the page.
(function () {
  "use strict";
  var rtf = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;
  var exact = window.Intl ? new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }) : null;
  var units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60]];

  function relative(date) {
    var seconds = (date.getTime() - Date.now()) / 1000;
    if (Math.abs(seconds) < 45) return "just now";
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(seconds) >= units[i][1] || units[i][0] === "minute") {
        return rtf.format(Math.round(seconds / units[i][1]), units[i][0]);
      }
    }
  }

  function rewrite(root) {
    if (!rtf || !exact) return;
    var nodes = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < nodes.length; i++) {
      var date = new Date(nodes[i].getAttribute("datetime"));
      if (isNaN(date.getTime())) continue;
      nodes[i].textContent = relative(date);
      nodes[i].title = exact.format(date);
    }
  }

  function start() {
    rewrite(document);
    window.setInterval(function () { rewrite(document); }, 60000);
    if (window.MutationObserver) {
      new MutationObserver(function (records) {
        for (var i = 0; i < records.length; i++) {
          for (var j = 0; j < records[i].addedNodes.length; j++) {
            var added = records[i].addedNodes[j];
            if (added.nodeType === 1) rewrite(added.tagName === "TIME" ? added.parentNode : added);
          }
        }
      }).observe(document.body, { childList: true, subtree: true });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
