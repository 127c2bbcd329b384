// The dashboard's small helpers: live campaign progress, live audience count, preview width.
// Loaded as a file (the CSP allows no inline script); every feature is optional enhancement.
(function () {
  "use strict";

  var ACTIVE = ["scheduled", "sending", "paused", "approved"];
  var POLL_MS = 3000;

  function pollProgress() {
    var holder = document.querySelector("[data-progress-url]");
    if (!holder) return;
    var url = holder.getAttribute("data-progress-url");
    var rows = Array.prototype.slice.call(document.querySelectorAll("[data-campaign-id]"));
    var ids = rows.filter(function (row) {
      return ACTIVE.indexOf(row.getAttribute("data-status")) !== -1;
    }).map(function (row) { return row.getAttribute("data-campaign-id"); });
    if (!ids.length) return;
    fetch(url + "?ids=" + encodeURIComponent(ids.join(",")), {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        data.campaigns.forEach(function (c) {
          var row = document.querySelector('[data-campaign-id="' + c.id + '"]');
          if (!row) return;
          row.setAttribute("data-status", c.status);
          var status = row.querySelector('[data-field="status"]');
          if (status) { status.textContent = c.status; status.className = "status status-" + c.status; }
          var bar = row.querySelector('[data-field="bar"]');
          if (bar) bar.value = c.percent;
          var text = row.querySelector('[data-field="text"]');
          if (text) text.textContent = c.done + " / " + c.recipients;
        });
      })
      .catch(function () { /* a missed poll is retried on the next tick */ })
      .then(function () { setTimeout(pollProgress, POLL_MS); });
  }

  function audienceCount() {
    var query = document.getElementById("query");
    var segment = document.getElementById("segment");
    var out = document.getElementById("audience-count");
    if (!query || !out) return;
    var url = query.getAttribute("data-count-url");
    var timer = null;
    var countEl = out.querySelector('[data-field="count"]');
    var errorEl = out.querySelector('[data-field="count-error"]');
    function refresh() {
      var params = segment && segment.value ? "segment=" + encodeURIComponent(segment.value)
                                            : "query=" + encodeURIComponent(query.value);
      fetch(url + "?" + params, {credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (data) {
          countEl.textContent = data.count === null || data.count === undefined ? "–" : data.count.toLocaleString();
          errorEl.textContent = data.error || "";
          // A live count replaces the stored one the page showed, and its time with it.
          var at = out.querySelector('[data-field="counted-at"]');
          if (at) at.hidden = true;
          // Who gets a release as it goes out, and who in their daily or weekly digest.
          var split = out.querySelector('[data-field="split"]');
          if (split) {
            var known = typeof data.now === "number";
            split.hidden = !known;
            if (known) {
              split.querySelector('[data-field="now"]').textContent = data.now.toLocaleString();
              split.querySelector('[data-field="in-digests"]').textContent = data.in_digests.toLocaleString();
            }
          }
        })
        .catch(function () { errorEl.textContent = "Could not count right now."; });
    }
    function later() { clearTimeout(timer); timer = setTimeout(refresh, 350); }
    query.addEventListener("input", later);
    if (segment) segment.addEventListener("change", refresh);
    // A saved segment's page arrives counted; count here only what the page did not.
    if (countEl.textContent.trim() === "–") refresh();
  }

  // The segments list: each row's count, fetched one by one (without JavaScript the cell
  // links to the segment's page, which counts).
  function liveCounts() {
    var cells = document.querySelectorAll("[data-live-count]");
    Array.prototype.reduce.call(cells, function (previous, cell) {
      return previous.then(function () {
        return fetch(cell.getAttribute("data-live-count"), {credentials: "same-origin"})
          .then(function (r) { return r.json(); })
          .then(function (data) {
            cell.textContent = typeof data.count === "number" ? data.count.toLocaleString()
                                                              : (data.error || "–");
            if (data.in_digests) {
              cell.textContent += " (" + data.now.toLocaleString() + " now, " +
                data.in_digests.toLocaleString() + " in digests)";
            }
          })
          .catch(function () {});
      });
    }, Promise.resolve());
  }

  function previewWidth() {
    var frame = document.getElementById("preview");
    if (!frame) return;
    var buttons = document.querySelectorAll("[data-preview-width]");
    Array.prototype.forEach.call(buttons, function (button) {
      button.addEventListener("click", function () {
        var mobile = button.getAttribute("data-preview-width") === "mobile";
        frame.classList.toggle("mobile", mobile);
        Array.prototype.forEach.call(buttons, function (b) {
          b.setAttribute("aria-pressed", b === button ? "true" : "false");
        });
      });
    });
  }

  // The segment builder writes the query text from simple choices (shown only with JS; the
  // query field alone works without it). Values are quoted the way the query language wants.
  function quoted(value) {
    return '"' + value.replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"';
  }
  function listOf(text) {
    return text.split(",").map(function (v) { return v.trim(); }).filter(Boolean);
  }
  function anyOf(field, op, values) {
    if (!values.length) return null;
    if (op === "=") {
      return values.length === 1 ? field + " = " + quoted(values[0])
                                 : field + " in (" + values.map(quoted).join(", ") + ")";
    }
    var parts = values.map(function (v) { return field + " " + op + " " + quoted(v); });
    return parts.length === 1 ? parts[0] : "(" + parts.join(" or ") + ")";
  }
  function builder() {
    var box = document.getElementById("builder");
    var query = document.getElementById("query");
    if (!box || !query) return;
    box.hidden = false;
    function compose() {
      var topics = Array.prototype.filter.call(box.querySelectorAll('[data-builder="topic"]'),
        function (el) { return el.checked; }).map(function (el) { return el.value; });
      var county = listOf(box.querySelector('[data-builder="county"]').value);
      var zips = listOf(box.querySelector('[data-builder="zip"]').value)
        .map(function (z) { return z.replace(/\*+$/, "") + "*"; });
      var frequency = box.querySelector('[data-builder="frequency"]').value;
      var parts = [anyOf("topic", "=", topics), anyOf("county", "=", county),
                   anyOf("zip", "~", zips), frequency ? anyOf("frequency", "=", [frequency]) : null]
        .filter(Boolean);
      query.value = parts.length ? parts.join(" and ") : 'status = "active"';
      query.dispatchEvent(new Event("input"));
    }
    Array.prototype.forEach.call(box.querySelectorAll("[data-builder]"), function (el) {
      el.addEventListener(el.tagName === "INPUT" && el.type === "text" ? "input" : "change",
                          compose);
    });
  }

  // A large CSV takes a while to upload: show how far it is, then the import report page.
  // Without JavaScript the form posts normally and the report page arrives all the same.
  function uploadProgress() {
    var form = document.querySelector("form[data-upload-progress]");
    if (!form || !window.XMLHttpRequest) return;
    var bar = form.querySelector("progress");
    var status = form.querySelector("[data-upload-status]");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.responseType = "document";
      bar.hidden = false;
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        bar.value = Math.round(e.loaded * 100 / e.total);
        status.textContent = bar.value < 100 ? "Uploading: " + bar.value + "%"
                                             : "Uploaded; importing…";
      });
      xhr.addEventListener("load", function () {
        if (!xhr.response || !xhr.response.body) { form.submit(); return; }
        document.title = xhr.response.title;
        document.body.replaceWith(document.importNode(xhr.response.body, true));
      });
      xhr.addEventListener("error", function () {
        status.textContent = "The upload failed; check the connection and try again.";
      });
      xhr.send(new FormData(form));
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    uploadProgress();
    setTimeout(pollProgress, POLL_MS);
    builder();
    audienceCount();
    liveCounts();
    previewWidth();
  });
})();
