"""The HTML report's page template, stylesheet and script (inline: the report is one file that
needs no network). The script renders the per-image view from the embedded JSON with DOM text
nodes only, never ``innerHTML`` of data, so model answers cannot inject markup."""

from __future__ import annotations

import json
import re
from typing import Any

CSS = """
:root { --ok: #1b7f3b; --bad: #b3261e; --muted: #666; --line: #ddd; --hi: #fff3c4; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
  color: #222; background: #fafafa; }
header { background: #1f3a5f; color: #fff; padding: 12px 24px; }
header h1 { margin: 0 0 4px; font-size: 20px; }
header p { margin: 0; opacity: .85; }
nav { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid var(--line);
  padding: 6px 24px; }
nav a { margin-right: 14px; color: #1f3a5f; text-decoration: none; }
main { padding: 0 24px 40px; }
section { margin-top: 22px; scroll-margin-top: 40px; }
h2 { font-size: 17px; border-bottom: 2px solid #1f3a5f; padding-bottom: 2px; }
h3 { font-size: 14px; margin: 14px 0 6px; }
table { border-collapse: collapse; background: #fff; margin: 6px 0; }
th, td { border: 1px solid var(--line); padding: 3px 7px; text-align: right; vertical-align: top; }
th:first-child, td:first-child, td.text { text-align: left; }
th { background: #eef2f7; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
td.best { font-weight: 700; }
tr.baseline td { color: var(--muted); font-style: italic; }
.note { color: var(--muted); font-size: 12px; }
.grid { display: flex; flex-wrap: wrap; gap: 18px; }
table.cm td.cell { cursor: pointer; min-width: 34px; text-align: center; }
table.cm td.cell:hover { outline: 2px solid #1f3a5f; }
table.cm td.diag { font-weight: 700; }
table.cm td.sel { outline: 3px solid #e08a00; }
table.cm th.rot { writing-mode: vertical-rl; transform: rotate(180deg); text-align: left;
  font-weight: 500; }
.filters { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; background: #fff;
  border: 1px solid var(--line); padding: 8px 12px; }
#cell-banner { background: var(--hi); padding: 4px 10px; border: 1px solid #e0c200; }
#cell-banner[hidden] { display: none; }
#gallery { display: flex; flex-direction: column; gap: 10px; margin-top: 10px; }
.card { display: flex; gap: 12px; background: #fff; border: 1px solid var(--line); padding: 8px; }
.card img, .card .ph { width: 128px; height: 128px; object-fit: contain; background: #000;
  flex: none; }
.card .ph { display: flex; align-items: center; justify-content: center; color: #ccc;
  font-size: 11px; text-align: center; padding: 6px; background: #444; }
.card .body { flex: 1; min-width: 0; }
.card .ref { color: #333; margin: 2px 0 6px; white-space: pre-wrap; }
.card table { width: 100%; font-size: 13px; }
.card th, .card td { text-align: left; }
.card th { white-space: nowrap; }
.card td.num { text-align: right; white-space: nowrap; }
.scroll { overflow-x: auto; max-width: 100%; }
table.nums td { white-space: nowrap; font-size: 13px; }
table.nums td.p { white-space: pre-line; }
.card td.answer { text-align: left; white-space: pre-wrap; word-break: break-word; }
.ok { color: var(--ok); }
.bad { color: var(--bad); font-weight: 600; }
.plots img { max-width: 100%; border: 1px solid var(--line); background: #fff; }
.plots figure { margin: 0; flex: 0 1 600px; }
.plots img { width: 100%; }
figcaption { color: var(--muted); font-size: 12px; }
dl.prov { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; }
dl.prov dt { font-weight: 600; }
dl.prov dd { margin: 0; word-break: break-word; }
"""

JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var LIMIT = 60;  // cards drawn at first; "show more" draws the next LIMIT
  var state = { limit: LIMIT, cell: null };
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function byId(id) { return document.getElementById(id); }

  // ---- sortable tables: click a header; numbers sort by data-v, text by its content
  function sortTable(table, col, th) {
    var body = table.tBodies[0];
    var dir = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) {
      c.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", dir);
    var rows = Array.prototype.slice.call(body.rows);
    function key(r) {
      var c = r.cells[col];
      var v = c ? c.getAttribute("data-v") : null;
      return v === null ? (c ? c.textContent : "") : parseFloat(v);
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      var nx = typeof x === "number" && !isNaN(x), ny = typeof y === "number" && !isNaN(y);
      if (nx !== ny) return nx ? -1 : 1;  // missing values last
      var c = nx ? x - y : String(x).localeCompare(String(y));
      return dir === "ascending" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (t) {
    Array.prototype.forEach.call(t.tHead.rows[0].cells, function (th, i) {
      th.addEventListener("click", function () { sortTable(t, i, th); });
    });
  });

  // ---- confusion matrices: pick one; click a cell to open its images
  var cmSelect = byId("cm-config");
  function showMatrix() {
    if (!cmSelect) return;
    Array.prototype.forEach.call(document.querySelectorAll(".cm-wrap"), function (w) {
      w.hidden = w.getAttribute("data-config") !== cmSelect.value;
    });
  }
  if (cmSelect) { cmSelect.addEventListener("change", showMatrix); showMatrix(); }
  Array.prototype.forEach.call(document.querySelectorAll("table.cm td.cell"), function (td) {
    td.addEventListener("click", function () {
      Array.prototype.forEach.call(document.querySelectorAll("table.cm td.sel"), function (s) {
        s.classList.remove("sel");
      });
      td.classList.add("sel");
      state.cell = { c: td.getAttribute("data-config"), t: td.getAttribute("data-true"),
                     p: td.getAttribute("data-pred") };
      state.limit = LIMIT;
      render();
      byId("images").scrollIntoView();
    });
  });

  // ---- the per-image view
  var configs = data.configs;
  function predOf(ans) { return ans ? (ans.valid ? ans.prediction : "invalid") : null; }
  function wrong(img, ans) { return ans && (!ans.valid || ans.prediction !== img.label); }
  function matches(img) {
    var cls = byId("f-class").value, who = byId("f-config").value;
    if (cls && img.label !== cls) return false;
    var chosen = configs.filter(function (c) { return !who || c.id === who; });
    var answers = chosen.map(function (c) { return c.answers[img.id]; });
    if (byId("f-wrong").checked && !answers.some(function (a) { return wrong(img, a); })) {
      return false;
    }
    if (byId("f-invalid").checked && !answers.some(function (a) { return a && !a.valid; })) {
      return false;
    }
    if (state.cell) {
      var cc = configs.filter(function (c) { return c.id === state.cell.c; })[0];
      var a = cc ? cc.answers[img.id] : null;
      if (img.label !== state.cell.t || predOf(a) !== state.cell.p) return false;
    }
    return true;
  }
  function fmt(v) {
    return typeof v === "number" ? v.toFixed(3) : String(v);
  }
  function card(img) {
    var c = el("div", "card");
    c.setAttribute("data-id", img.id);
    if (img.uri) {
      var im = el("img");
      im.src = img.uri;
      im.alt = img.id;
      im.title = img.id;
      c.appendChild(im);
    } else {
      c.appendChild(el("div", "ph", "image unavailable" + (img.error ? ": " + img.error : "")));
    }
    var b = el("div", "body");
    var head = el("div");
    head.appendChild(el("b", null, img.id));
    head.appendChild(document.createTextNode(" \u00b7 true class: "));
    head.appendChild(el("b", null, img.label));
    b.appendChild(head);
    var ref = img.report ? "Reference: " + img.report : "No reference report.";
    b.appendChild(el("div", "ref", ref));
    var t = el("table"), hr = el("tr");
    ["Configuration", "Parsed class", "Valid"].concat(data.sample_titles).concat(["Answer"])
      .forEach(function (h) { hr.appendChild(el("th", null, h)); });
    t.appendChild(hr);
    configs.forEach(function (cfg) {
      var a = cfg.answers[img.id];
      if (!a) return;
      var tr = el("tr", wrong(img, a) ? "wrong" : "right");
      tr.appendChild(el("td", null, cfg.id));
      tr.appendChild(el("td", a.valid && a.prediction === img.label ? "ok" : "bad",
                        a.valid ? a.prediction : "\u2013"));
      var why = a.invalid_reason ? ": " + a.invalid_reason : "";
      tr.appendChild(el("td", a.valid ? "ok" : "bad", a.valid ? "yes" : "invalid" + why));
      data.sample_metrics.forEach(function (m) {
        var v = a.metrics[m];
        tr.appendChild(el("td", "num", v === undefined || v === null ? "\u2013" : fmt(v)));
      });
      tr.appendChild(el("td", "answer", a.answer));
      t.appendChild(tr);
    });
    b.appendChild(t);
    c.appendChild(b);
    return c;
  }
  function render() {
    var gallery = byId("gallery");
    while (gallery.firstChild) gallery.removeChild(gallery.firstChild);
    var shown = data.images.filter(matches);
    shown.slice(0, state.limit).forEach(function (img) { gallery.appendChild(card(img)); });
    byId("count").textContent = shown.length + " of " + data.images.length + " images" +
      (shown.length > state.limit ? " (first " + state.limit + " shown)" : "");
    byId("more").hidden = shown.length <= state.limit;
    var banner = byId("cell-banner");
    if (state.cell) {
      banner.hidden = false;
      byId("cell-text").textContent = "Confusion cell of " + state.cell.c + ": true " +
        state.cell.t + " \u2192 predicted " + state.cell.p;
    } else {
      banner.hidden = true;
    }
  }
  ["f-class", "f-config", "f-wrong", "f-invalid"].forEach(function (id) {
    byId(id).addEventListener("change", function () { state.limit = LIMIT; render(); });
  });
  byId("cell-clear").addEventListener("click", function () {
    state.cell = null;
    Array.prototype.forEach.call(document.querySelectorAll("table.cm td.sel"), function (s) {
      s.classList.remove("sel");
    });
    render();
  });
  byId("more").addEventListener("click", function () { state.limit += LIMIT; render(); });
  render();
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>@TITLE@</title>
<style>@CSS@</style>
</head>
<body>
<header><h1>@TITLE@</h1><p>@SUBTITLE@</p></header>
<nav>@NAV@</nav>
<main>
@BODY@
</main>
<script id="report-data" type="application/json">@DATA@</script>
<script>@JS@</script>
</body>
</html>
"""

IMAGES = """<section id="images"><h2>Images</h2>
<div class="filters">
<label>True class <select id="f-class"><option value="">all</option>@CLASSES@</select></label>
<label>Configuration <select id="f-config"><option value="">any</option>@CONFIGS@</select></label>
<label><input type="checkbox" id="f-wrong"> wrong only</label>
<label><input type="checkbox" id="f-invalid"> invalid only</label>
<span id="count"></span>
<span id="cell-banner" hidden><span id="cell-text"></span> <button id="cell-clear" type="button">\
clear</button></span>
</div>
<p class="note">"Wrong only" and "invalid only" keep an image when the chosen configuration (or
any, with "any") answered it wrongly or invalidly; an invalid answer counts as wrong.@NOTE@</p>
<div id="gallery"></div>
<button id="more" type="button" hidden>show more</button>
</section>
"""


def fill(template: str, **values: str) -> str:
    """Put each ``@NAME@`` marker's value in, in one pass over the template: an inserted value
    is never scanned again, so text that happens to look like a marker stays as it is."""
    return re.sub(r"@([A-Z]+)@", lambda m: values.get(m.group(1).lower(), m.group(0)), template)


def page(title: str, subtitle: str, nav: str, body: str, data: str) -> str:
    """The whole page; every argument is already escaped HTML (``data``: JSON made safe for a
    script element)."""
    return fill(PAGE, title=title, subtitle=subtitle, nav=nav, body=body, data=data, css=CSS, js=JS)


def json_for_script(doc: Any) -> str:
    """JSON that cannot close or confuse the ``<script>`` element holding it."""
    text = json.dumps(doc, ensure_ascii=False, default=str, separators=(",", ":"))
    for ch, sub in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, sub)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
