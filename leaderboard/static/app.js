/* Leaderboard page behaviour: sorting, filtering and the details panel. Plain JS, no libraries.
 * The tables are rendered (and escaped) at build time; this script only reorders and hides rows,
 * and fills the details panel from the inline JSON with textContent (never innerHTML). */
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("bench-data").textContent);
  var state = { group: "all", source: "all", text: "" };
  var entriesById = {};
  DATA.entries.forEach(function (e) { entriesById[e.id] = e; });
  var columnsById = {};
  DATA.columns.forEach(function (c) { columnsById[c.id] = c; });

  function num(td) {
    var v = td ? td.getAttribute("data-value") : null;
    if (v === null || v === "") return null;
    var x = Number(v);
    return isFinite(x) ? x : null;
  }

  function byName(a, b) {
    var x = (a.getAttribute("data-encoder") || "").toLowerCase(), y = (b.getAttribute("data-encoder") || "").toLowerCase();
    return x < y ? -1 : x > y ? 1 : 0;
  }

  /* Click a header: the first click puts the best values first (by the column's direction),
   * the next click reverses. Missing values always go last, whatever the order. */
  function sortBy(th) {
    var table = th.closest("table");
    var tbody = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var type = th.getAttribute("data-type") || "num";
    var current = th.getAttribute("aria-sort");
    var best = type === "num" ? (th.getAttribute("data-hib") === "1" ? "descending" : "ascending") : "ascending";
    var next = (current === "ascending" || current === "descending")
      ? (current === "ascending" ? "descending" : "ascending") : best;
    table.querySelectorAll("th[aria-sort]").forEach(function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", next);
    var sign = next === "ascending" ? 1 : -1;
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.sort(function (a, b) {
      var ca = a.cells[index], cb = b.cells[index];
      if (type === "num") {
        var va = num(ca), vb = num(cb);
        if (va === null && vb === null) return byName(a, b);
        if (va === null) return 1;
        if (vb === null) return -1;
        if (va !== vb) return sign * (va - vb);
        return byName(a, b);
      }
      var ta = (ca ? ca.textContent : "").toLowerCase(), tb = (cb ? cb.textContent : "").toLowerCase();
      if (ta !== tb) return sign * (ta < tb ? -1 : 1);
      return byName(a, b);
    });
    rows.forEach(function (r) { tbody.appendChild(r); });
  }

  function applyFilters() {
    var shown = 0, total = 0;
    document.querySelectorAll("section.board-section").forEach(function (sec) {
      var g = sec.getAttribute("data-group");
      var visible = state.group === "all" || g === state.group;
      sec.classList.toggle("hidden", !visible);
    });
    document.querySelectorAll("table.board tbody tr").forEach(function (tr) {
      var name = (tr.getAttribute("data-encoder") || "").toLowerCase();
      var src = tr.getAttribute("data-source") || "";
      var ok = (state.source === "all" || src === state.source) && (!state.text || name.indexOf(state.text) !== -1);
      tr.classList.toggle("filtered", !ok);
      if (!tr.closest("section").classList.contains("hidden")) { total += 1; if (ok) shown += 1; }
    });
    document.querySelectorAll("figure.plot").forEach(function (f) {
      var src = f.getAttribute("data-source");
      f.classList.toggle("filtered", !(state.source === "all" || src === state.source));
    });
    var count = document.getElementById("shown-count");
    if (count) count.textContent = shown + " of " + total + " rows shown";
  }

  function addDetail(dl, key, value) {
    var dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = key;
    dd.textContent = value;
    dl.appendChild(dt);
    dl.appendChild(dd);
  }

  function showDetails(td) {
    var entry = entriesById[td.getAttribute("data-entry")];
    var col = columnsById[td.getAttribute("data-col")];
    if (!entry || !col) return;
    var cell = entry.cells[col.id];
    var panel = document.getElementById("detail-panel");
    var dl = document.getElementById("detail-body");
    document.getElementById("detail-title").textContent = entry.name + " — " + col.task;
    while (dl.firstChild) dl.removeChild(dl.firstChild);
    addDetail(dl, "source", entry.source);
    addDetail(dl, "metric", col.metric + " (" + (col.higher_is_better ? "higher" : "lower") + " is better" +
      (col.unit ? ", " + col.unit : "") + ")");
    if (!cell) {
      addDetail(dl, "value", td.textContent);
    } else if (entry.source === "measured") {
      addDetail(dl, "mean", String(cell.mean));
      if (cell.std !== null) addDetail(dl, "std", String(cell.std));
      addDetail(dl, "95% interval", (cell.lo !== null && cell.lo !== undefined) ?
        "[" + cell.lo + ", " + cell.hi + "] (" + cell.ci_method + ")" : (cell.ci_method || "none"));
      if (cell.delta_ci && cell.delta_ci.lo !== null) addDetail(dl, "+SB delta interval",
        "[" + cell.delta_ci.lo + ", " + cell.delta_ci.hi + "] (" + cell.delta_ci.method + "; " +
        (cell.delta_ci.significant ? "significant" : "not significant") + ")");
      addDetail(dl, "n (seeds)", cell.n + " (" + cell.seeds.join(", ") + ")");
      addDetail(dl, "values", cell.values.join(", "));
      addDetail(dl, "run ids", cell.run_ids.join(", "));
      addDetail(dl, "protocol", cell.protocol || "unknown");
      addDetail(dl, "task version", "v" + cell.task_version + (cell.config_hash ? ", config " + cell.config_hash : ""));
      addDetail(dl, "weights", (cell.weights || []).join(", ") || "unknown");
      Object.keys(cell.params).forEach(function (k) { addDetail(dl, k, cell.params[k]); });
    } else {
      addDetail(dl, "reported", cell.text);
      addDetail(dl, "from", cell.table + " (" + cell.source + ")");
      if (cell.note) addDetail(dl, "note", cell.note);
      cell.also.forEach(function (a) { addDetail(dl, "also in", a.table + ": " + a.value); });
      if (entry.zoo) addDetail(dl, "our zoo name", entry.zoo);
    }
    panel.hidden = false;
  }

  document.querySelectorAll("th.sortable").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); sortBy(th); }
    });
  });
  document.querySelectorAll(".group-btn").forEach(function (btn) {
    btn.addEventListener("click", function () {
      state.group = btn.getAttribute("data-group");
      document.querySelectorAll(".group-btn").forEach(function (b) {
        b.setAttribute("aria-pressed", b === btn ? "true" : "false");
      });
      applyFilters();
    });
  });
  var sourceFilter = document.getElementById("source-filter");
  sourceFilter.addEventListener("change", function () { state.source = sourceFilter.value; applyFilters(); });
  var textFilter = document.getElementById("encoder-filter");
  textFilter.addEventListener("input", function () { state.text = textFilter.value.trim().toLowerCase(); applyFilters(); });
  document.querySelectorAll("td.value").forEach(function (td) {
    td.addEventListener("click", function () { showDetails(td); });
    td.addEventListener("keydown", function (ev) { if (ev.key === "Enter") showDetails(td); });
  });
  document.getElementById("detail-close").addEventListener("click", function () {
    document.getElementById("detail-panel").hidden = true;
  });
  applyFilters();
  document.documentElement.setAttribute("data-ready", "1");
})();
