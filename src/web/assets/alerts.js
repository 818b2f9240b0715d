// Live alerts for a board's page: one EventSource on /alerts/live. Each event's id is its
// alert sequence; the browser resends the last one as Last-Event-ID when it reconnects, and
// the page keeps it for the tab so a reload resumes after it too; an alert the page already
// shows (in its history) is not added again. Alerts are written with
// textContent only: their text never becomes markup.
"use strict";
(function () {
  var status = document.getElementById("live-status");
  var list = document.getElementById("live-alerts");
  if (!status || !list || !window.EventSource) {
    return;
  }
  var key = "marr-last-alert";
  var drawn = Number(status.getAttribute("data-after")) || 0;
  var kept = Number(window.sessionStorage.getItem(key));
  // A reload resumes after the last alert this tab saw, if that is earlier than the page.
  var after = kept > 0 && kept < drawn ? kept : drawn;
  var seen = after;
  var source = new EventSource("/alerts/live?after=" + after);
  function remember(id) {
    var sequence = Number(id);
    if (sequence > seen) {
      seen = sequence;
      window.sessionStorage.setItem(key, String(seen));
    }
  }
  source.addEventListener("open", function () {
    status.textContent = "Connected: new alerts appear below as they are raised.";
  });
  source.addEventListener("error", function () {
    status.textContent = "Reconnecting…";
  });
  source.addEventListener("heartbeat", function (event) {
    remember(event.lastEventId);
  });
  source.addEventListener("alert", function (event) {
    var alert = JSON.parse(event.data);
    // A tab resuming after the last alert it saw is sent again those the history on this page
    // already lists: each shows once.
    if (document.querySelector('[data-sequence="' + Number(alert.sequence) + '"]')) {
      remember(event.lastEventId);
      return;
    }
    var item = document.createElement("li");
    item.setAttribute("data-sequence", String(alert.sequence));
    var title = document.createElement("strong");
    title.textContent = alert.severity + " · " + alert.kind + " · " + alert.place;
    var detail = document.createElement("div");
    detail.textContent = alert.detail + " (alert " + alert.sequence + ", " + alert.raised_at + ")";
    item.appendChild(title);
    item.appendChild(detail);
    list.insertBefore(item, list.firstChild);
    remember(event.lastEventId);
  });
})();
