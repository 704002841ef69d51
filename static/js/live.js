// Live pages: the dashboard page that carries a `live-config` (its watches and the outbox's head when it was
// rendered) opens the node's WebSocket with the staff session, subscribes to each watch, and on each event
// fetches the page again and swaps the regions marked `data-live="<name>"` for the freshly rendered
// (server-escaped) ones. Event data itself is never put into the page. Reconnects with backoff and resumes from
// the last seq it heard. While the socket is down a persistent status element ([data-live-status]) says so and
// when the page last updated; it clears once the socket is subscribed again.
(function () {
  "use strict";
  var configNode = document.getElementById("live-config");
  if (!configNode || !("WebSocket" in window)) return;
  var config = JSON.parse(configNode.textContent);
  var watches = config.watches || [config.watch];
  var lastSeq = typeof config.since === "number" ? config.since : null;
  var subscriptionId = "page-" + Math.random().toString(36).slice(2, 10);
  var lastUpdated = new Date(); // the page was rendered now
  var subscribed = 0; // watches confirmed on the current socket
  var attempt = 0;
  var refreshing = false;
  var again = false;
  var waiting = false; // a refresh was held back by a form being filled in
  var FORBIDDEN = 4403;

  function notice(text) {
    var el = document.querySelector("[data-live-notice]");
    if (!el) {
      el = document.createElement("div");
      el.setAttribute("data-live-notice", "");
      el.setAttribute("role", "status");
      el.setAttribute("aria-live", "polite");
      el.style.cssText =
        "position:fixed;right:1rem;bottom:1rem;background:#1e293b;color:#fff;padding:.4rem .8rem;" +
        "border-radius:6px;font-size:13px;opacity:.92;z-index:10";
      document.body.appendChild(el);
    }
    el.textContent = text;
    el.hidden = false;
    clearTimeout(notice.timer);
    notice.timer = setTimeout(function () { el.hidden = true; }, 4000);
  }

  // The connection's state, in the page until it is good again (a toast would vanish while it is still down).
  function status(down, text) {
    var el = document.querySelector("[data-live-status]");
    if (!el) {
      el = document.createElement("div");
      el.setAttribute("data-live-status", "");
      el.setAttribute("role", "status");
      el.className = "live-status";
      el.style.cssText =
        "position:fixed;left:1rem;bottom:1rem;background:#7f1d1d;color:#fff;padding:.4rem .8rem;" +
        "border-radius:6px;font-size:13px;z-index:11;max-width:calc(100vw - 2rem)";
      document.body.appendChild(el);
    }
    el.hidden = !down;
    el.setAttribute("data-state", down ? "down" : "live");
    if (down) el.textContent = text;
  }

  function downText() {
    return "Live updates are paused: no connection to this node. Last updated " +
      lastUpdated.toLocaleTimeString() + "; reconnecting\u2026";
  }

  // A region whose form someone is filling in (focus inside, or a field changed) is left alone until they
  // are done: swapping it would throw their typing away.
  function busy(region) {
    if (region.contains(document.activeElement) && document.activeElement !== document.body) return true;
    var fields = region.querySelectorAll("input, textarea, select");
    for (var i = 0; i < fields.length; i++) {
      if (changed(fields[i])) return true;
    }
    return false;
  }

  function changed(f) {
    if (f.tagName === "SELECT") {  // a select has no defaultValue: its options say what was chosen by hand
      return Array.prototype.some.call(f.options, function (o) { return o.selected !== o.defaultSelected; }) &&
        !(f.selectedIndex === 0 && !Array.prototype.some.call(f.options, function (o) { return o.defaultSelected; }));
    }
    if (f.type === "checkbox" || f.type === "radio") return f.checked !== f.defaultChecked;
    return f.value !== f.defaultValue;
  }

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var held = false;
    document.querySelectorAll("[data-live]").forEach(function (region) {
      var name = region.getAttribute("data-live");
      var next = fresh.querySelector('[data-live="' + CSS.escape(name) + '"]');
      if (!next) return;
      if (busy(region)) { held = true; return; }
      var open = Array.prototype.map.call(region.querySelectorAll("details"), function (d) { return d.open; });
      var node = document.importNode(next, true);
      region.replaceWith(node);
      node.querySelectorAll("details").forEach(function (d, i) { if (open[i]) d.open = true; });
    });
    var title = fresh.querySelector("title");
    if (title) document.title = title.textContent;
    lastUpdated = new Date();
    waiting = held;
    notice(held ? "Updated (the form you are filling in keeps its old state)" :
      "Updated " + new Date().toLocaleTimeString());
  }

  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Live-Refresh": "1" } })
      .then(function (response) {
        if (response.status === 404) { notice("This page no longer exists"); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) { if (html) swap(html); })
      .catch(function () { notice("Could not refresh; will try at the next change"); })
      .then(function () {
        refreshing = false;
        if (again) { again = false; refresh(); }
      });
  }

  document.addEventListener("focusout", function () { if (waiting) setTimeout(refresh, 200); });

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + config.url);
    subscribed = 0;
    socket.onopen = function () {
      watches.forEach(function (watch, i) {
        var subscribe = { type: "subscribe", subscription_id: subscriptionId + "-" + i, watch: watch };
        if (lastSeq !== null) subscribe.since = lastSeq;
        socket.send(JSON.stringify(subscribe));
      });
    };
    socket.onmessage = function (message) {
      var data;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      if (data.type === "subscribed") {
        attempt = 0;
        subscribed += 1;
        if (subscribed === watches.length) status(false);
        if (lastSeq === null) lastSeq = data.head_seq;
      } else if (data.type === "event" && data.event && typeof data.event.seq === "number") {
        if (lastSeq === null || data.event.seq > lastSeq) lastSeq = data.event.seq;
        refresh();
      } else if (data.type === "changed") { // a watched table (subscriptions, remotes) changed: no seq
        refresh();
      } else if (data.type === "error" && window.console) {
        console.warn("live updates:", data.errors || data);
      }
    };
    socket.onclose = function (event) {
      if (event.code === FORBIDDEN) { notice("Live updates are off: log in as staff to get them"); return; }
      status(true, downText());
      var delay = Math.min(30000, 1000 * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
      attempt += 1;
      setTimeout(connect, delay);
    };
  }

  connect();
})();
