// mininq dashboard: what htmx attributes can't say on their own.
// - relative times ("12 s ago") kept fresh every second, from <time datetime>;
// - no polling while the tab is hidden or while the user selects text in a part;
// - the open job and the filters mirrored into the address bar (reload keeps them);
// - closing the job detail, filter shortcuts, the "connection lost" banner.
(function () {
  "use strict";

  var skew = 0; // server clock minus this browser's clock, in ms

  function relative(ms) {
    var secs = Math.round((ms - (Date.now() + skew)) / 1000);
    var abs = Math.abs(secs);
    var text;
    if (abs < 2) return "just now";
    if (abs < 60) text = abs + " s";
    else if (abs < 3600) text = Math.floor(abs / 60) + " min";
    else if (abs < 172800) text = Math.floor(abs / 3600) + " h";
    else text = Math.floor(abs / 86400) + " d";
    return secs > 0 ? "in " + text : text + " ago";
  }

  function updateTimes() {
    document.querySelectorAll("time[data-rel]").forEach(function (el) {
      var ms = Date.parse(el.getAttribute("datetime"));
      if (isNaN(ms)) return;
      var text = relative(ms);
      if (el.hasAttribute("data-paren")) text = "(" + text + ")";
      if (el.textContent !== text) el.textContent = text;
    });
  }

  function openJobId() {
    var panel = document.getElementById("job-panel");
    return panel ? panel.getAttribute("data-job-id") : null;
  }

  // Mark the open job's row and put filters, page and open job into the URL.
  function syncState() {
    var id = openJobId();
    document.querySelectorAll("#jobs tr[data-job-id]").forEach(function (row) {
      row.classList.toggle("is-open", row.getAttribute("data-job-id") === id);
    });
    var form = document.getElementById("job-filters");
    if (!form) return;
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, name) {
      if (value) params.set(name, value);
    });
    document.querySelectorAll("#jobs .jobs-cursor input").forEach(function (input) {
      if (input.value) params.set(input.name, input.value);
    });
    if (id) params.set("job", id);
    var query = params.toString();
    var url = location.pathname + (query ? "?" + query : "");
    if (url !== location.pathname + location.search) history.replaceState(null, "", url);
  }

  function closeDetail() {
    var detail = document.getElementById("detail");
    if (detail && detail.firstChild) {
      detail.textContent = "";
      syncState();
    }
  }

  function selectingIn(elt) {
    var sel = window.getSelection();
    return sel && !sel.isCollapsed && sel.anchorNode && elt.contains(sel.anchorNode);
  }

  function filterJobs(field, value) {
    var form = document.getElementById("job-filters");
    if (!form || !window.htmx) return false;
    form.elements[field].value = value;
    htmx.trigger(form, "change");
    document.getElementById("jobs-title").scrollIntoView({ block: "start" });
    return true;
  }

  document.addEventListener("htmx:beforeRequest", function (e) {
    var elt = e.detail.elt;
    if (elt.hasAttribute("data-poll") && (document.hidden || selectingIn(elt))) {
      e.preventDefault();
    }
  });

  document.addEventListener("htmx:afterSwap", function () {
    updateTimes();
    syncState();
  });

  document.addEventListener("htmx:afterRequest", function (e) {
    if (e.detail.xhr && e.detail.xhr.status) document.body.classList.remove("is-offline");
  });
  ["htmx:sendError", "htmx:timeout"].forEach(function (name) {
    document.addEventListener(name, function () {
      document.body.classList.add("is-offline");
    });
  });

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && window.htmx) htmx.trigger(document.body, "mininq:changed");
  });

  document.addEventListener("click", function (e) {
    var target = e.target.closest("[data-close-detail], [data-filter-queue], [data-filter-status]");
    if (!target || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return;
    if (target.hasAttribute("data-close-detail")) {
      closeDetail();
    } else if (target.hasAttribute("data-filter-queue")) {
      if (filterJobs("queue", target.getAttribute("data-filter-queue"))) e.preventDefault();
    } else if (filterJobs("status", target.getAttribute("data-filter-status"))) {
      e.preventDefault();
    }
  });

  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && !e.target.closest("input, select, textarea")) closeDetail();
  });

  var now = Number(document.body.getAttribute("data-server-now"));
  if (now) skew = now - Date.now();
  updateTimes();
  syncState();
  setInterval(updateTimes, 1000);
})();
