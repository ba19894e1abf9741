"""The leaderboard page as HTML: group tables with ranks, badges, deltas and status cells, inline-SVG
bar charts, the runs and the reference/diagnostic metrics behind toggles, all escaped here.

Draws `site.build_data(...)`; every rule it shows (best, delta, not run / missing data) comes from
`leaderboard/grid.py`, shared with the tables.
"""
from __future__ import annotations

import json
import math
import re
from importlib import resources
from types import SimpleNamespace
from typing import Any, Mapping

from leaderboard.grid import decimals_for, delta_cell, fmt, status_cell
from leaderboard.render import esc_html

SOURCES = ("measured", "paper")


def board_key(board: str, group: str) -> str:
    """Rank key of a group (or "overall") on a board: paper tasks keep the plain names."""
    return group if board == "paper" else f"{board}:{group}"


def _static(name: str) -> str:
    return resources.files("leaderboard").joinpath("static").joinpath(name).read_text(encoding="utf-8")


def json_for_html(obj: Any) -> str:
    """JSON that is safe inside <script type="application/json">: no `</script>`, `<!--`, or line separators."""
    text = json.dumps(obj, ensure_ascii=False, sort_keys=True, allow_nan=False)
    for ch, rep in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, rep)
    return text


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------

def _num_attr(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def _decimals(entry: dict[str, Any], col: dict[str, Any]) -> int:
    cell = entry["cells"].get(col["id"], {})
    if entry["source"] == "paper" and cell.get("decimals") is not None:
        return int(cell["decimals"])
    return col["decimals"] if col.get("decimals") is not None else 3


def _delta_html(entry: dict[str, Any], col: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> str:
    base = by_id.get(entry.get("base_id") or "")
    if base is None or col["id"] not in base["cells"] or col["id"] not in entry["cells"]:
        return ""
    ci = entry["cells"][col["id"]].get("delta_ci")
    cell = delta_cell(base["cells"][col["id"]]["mean"], entry["cells"][col["id"]]["mean"], col["higher_is_better"],
                      _decimals(entry, col), entry["source"], base["label"],
                      SimpleNamespace(**ci) if ci and ci.get("lo") is not None else None)
    if cell.kind != "delta":
        return ""
    cls = "same" if cell.good is None else ("good" if cell.good else "bad")
    sig = {True: "yes", False: "no", None: "unknown"}[cell.significant]
    return (f' <span class="delta {cls}" data-significant="{sig}" title="{esc_html(cell.title)}">'
            f'{esc_html(cell.text)}</span>')


def _cell_html(entry: dict[str, Any], col: dict[str, Any], catalog: Mapping[str, Any] | None,
               by_id: dict[str, dict[str, Any]]) -> str:
    cell = entry["cells"].get(col["id"])
    attrs = f'data-col="{esc_html(col["id"])}" data-entry="{esc_html(entry["id"])}"'
    if cell is None:
        if entry["source"] == "paper":
            return f'<td class="num none" {attrs} data-value="" title="not in the paper">—</td>'
        st = status_cell(col["task"], catalog)
        return (f'<td class="num {st.kind}" {attrs} data-value="" title="{esc_html(st.title)}">'
                f"{esc_html(st.text)}</td>")
    if entry["source"] == "measured":
        runs = ", ".join(r[:8] for r in cell["run_ids"])
        badge = (f'<span class="badge measured" title="measured: run {esc_html(", ".join(cell["run_ids"]))}">'
                 f'measured <span class="run">{esc_html(runs)}</span></span>')
        text = cell["text"]
        if cell.get("deviation"):  # a small protocol variant: named, never read as a paper-protocol number
            badge += (f' <span class="badge variant" title="{esc_html(cell["deviation"])}: not the paper\'s protocol, '
                      f'not comparable with paper numbers">{esc_html(cell["deviation"])}</span>')
    else:
        text = cell["text"] + (" †" if cell.get("note") else "")
        badge = f'<span class="badge paper" title="{esc_html(cell["table"])}">paper</span>'
    best = " best" if cell.get("best") else ""
    value = f'<span class="v">{esc_html(text)}</span>'
    if best:
        value = f"<strong>{value}</strong>"
    return (f'<td class="num value{best}" {attrs} data-value="{esc_html(_num_attr(cell["mean"]))}" '
            f'title="{esc_html(cell["title"])}" tabindex="0">{value}{_delta_html(entry, col, by_id)} {badge}</td>')


def _name_html(entry: dict[str, Any]) -> str:
    if entry["source"] == "paper":
        title = f"paper row {entry['name']}; our zoo name: {entry.get('zoo') or 'none'}; {', '.join(entry['tables'])}"
    else:
        title = entry.get("title") or f"zoo encoder {entry['name']}"
    ref = entry.get("reference")
    mark = (f' <span class="badge reference" title="reference row ({esc_html(ref)}): shown for scale, never ranked">'
            f'reference: {esc_html(ref)}</span>') if ref else ""
    return f'<td class="name" title="{esc_html(title)}">{esc_html(entry["label"])}{mark}</td>'


def _row_attrs(entry: dict[str, Any]) -> str:
    return (f'data-encoder="{esc_html(entry["name"])}" data-source="{esc_html(entry["source"])}" '
            f'data-id="{esc_html(entry["id"])}"')


def _th(label: str, kind: str, hib: bool | None = None, title: str = "", col: str = "") -> str:
    arrow = "" if hib is None else (" ↑" if hib else " ↓")
    return (f'<th class="sortable" tabindex="0" aria-sort="none" data-type="{kind}" '
            f'data-hib="{"1" if hib else "0"}"' + (f' data-col="{esc_html(col)}"' if col else "")
            + (f' title="{esc_html(title)}"' if title else "") + f">{esc_html(label)}{arrow}</th>")


def _rank_td(entry: dict[str, Any], key: str) -> str:
    r = entry["rank"].get(key)
    cov, of = entry["coverage"].get(key, 0), entry.get("coverage_of", {}).get(key, 0)
    if entry.get("reference"):
        return '<td class="num rank reference" data-value="" title="reference row: never ranked">ref.</td>'
    if r is None:
        why = (f"not ranked: no column that every ranked {entry['source']} entry has ({of} with results)"
               if of else "no result here")
        return f'<td class="num rank" data-value="" title="{esc_html(why)}">—</td>'
    return (f'<td class="num rank" data-value="{r!r}" title="mean rank over the {cov} column(s) every ranked '
            f'{esc_html(entry["source"])} entry has, of {of} with results">{r:.2f} '
            f'<span class="cov">({cov}/{of})</span></td>')


def _sorted_entries(entries: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return sorted(entries, key=lambda e: (SOURCES.index(e["source"]), bool(e.get("reference")),
                                          e["rank"].get(key, math.inf), e["name"].lower()))


def _board_groups(data: dict[str, Any], board: str) -> list[dict[str, str]]:
    present = {c["group"] for c in data["columns"] if c.get("board", "paper") == board}
    return [g for g in data["groups"] if g["id"] in present]


def _overall_html(data: dict[str, Any], board: str = "paper") -> str:
    groups = _board_groups(data, board)
    key = board_key(board, "overall")
    cols = {c["id"] for c in data["columns"] if c.get("board", "paper") == board}
    head = (_th("Encoder", "text") + _th("Source", "text")
            + _th("Overall", "num", False, "mean rank over the columns every ranked entry has (k/N: ranked on / with results)")
            + "".join(_th(g["label"], "num", False, f"mean rank over the {g['label']} columns") for g in groups))
    rows = []
    for e in _sorted_entries(data["entries"], key):
        if not any(c in e["cells"] for c in cols):
            continue
        rows.append(f"<tr {_row_attrs(e)}>{_name_html(e)}<td>{_source_badge(e)}</td>{_rank_td(e, key)}"
                    + "".join(_rank_td(e, board_key(board, g["id"])) for g in groups) + "</tr>")
    label = next((b["label"] for b in data.get("boards", []) if b["id"] == board), board)
    sid = "overall" if board == "paper" else f"overall-{board}"
    return (f'<section class="board-section" data-group="overall" data-board="{esc_html(board)}" id="section-{sid}">'
            f'<h2>Overall rank: {esc_html(label)}</h2>'
            f'<table class="board" id="table-{sid}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
            f'</table></section>')


def _source_badge(e: dict[str, Any]) -> str:
    return f'<span class="badge {esc_html(e["source"])}">{esc_html(e["source"])}</span>'


def _group_html(data: dict[str, Any], group: dict[str, str], catalog: Mapping[str, Any] | None,
                board: str = "paper") -> str:
    cols = [c for c in data["columns"] if c["group"] == group["id"] and c.get("board", "paper") == board]
    rank_key = board_key(board, group["id"])
    by_id = {e["id"]: e for e in data["entries"]}
    head = (_th("Encoder", "text") + _th("Source", "text")
            + _th("Rank", "num", False, f"mean rank over the {group['label']} columns"))
    for c in cols:
        title = (f"{c['task']} / {c['metric']} ({'higher' if c['higher_is_better'] else 'lower'} is better"
                 + (f", {c['unit']}" if c.get("unit") else "") + ")"
                 + (f"; {c['variant']}" if c.get("variant") else "")
                 + ("; synthetic twin of a paper task" if c["synthetic"] else ""))
        head += _th(c["label"], "num", c["higher_is_better"], title, c["id"])
    rows = []
    for e in _sorted_entries(data["entries"], rank_key):
        if not any(c["id"] in e["cells"] for c in cols):
            continue
        rows.append(f"<tr {_row_attrs(e)}>{_name_html(e)}<td>{_source_badge(e)}</td>{_rank_td(e, rank_key)}"
                    + "".join(_cell_html(e, c, catalog, by_id) for c in cols) + "</tr>")
    gid = esc_html(group["id"])
    sid = gid if board == "paper" else f"{esc_html(board)}-{gid}"
    plots = "".join(_plots_html(data, group, cols, source) for source in SOURCES)
    title = group["label"] + ("" if board == "paper" else " (synthetic twins)")
    return (f'<section class="board-section group" data-group="{gid}" data-board="{esc_html(board)}" '
            f'id="section-{sid}"><h2>{esc_html(title)}</h2>'
            f'<table class="board" id="table-{sid}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
            f'</table><div class="plots">{plots}</div></section>')


# ---------------------------------------------------------------------------------------------
# SVG bar charts: base vs +SB, one small chart per task column
# ---------------------------------------------------------------------------------------------

def _pairs(data: dict[str, Any], col: dict[str, Any], source: str) -> tuple[list[tuple[str, float, float]], int]:
    """(base label, base value, +SB value) for every base/+SB pair of a source, and the decimals to print."""
    by_id = {e["id"]: e for e in data["entries"]}
    out, decimals = [], []
    for e in data["entries"]:
        b = by_id.get(e.get("base_id") or "")
        if e["source"] != source or b is None:
            continue
        bc, sc = b["cells"].get(col["id"], {}), e["cells"].get(col["id"], {})
        if bc.get("mean") is not None and sc.get("mean") is not None:
            out.append((b["label"], float(bc["mean"]), float(sc["mean"])))
            decimals += [_decimals(x, col) for x in (b, e)]
    return out, (max(decimals) if decimals else 3)


def svg_bars(col: dict[str, Any], pairs: list[tuple[str, float, float]], decimals: int | None = None) -> str:
    """Grouped bars (base grey, +SB blue) from zero, with value labels; all text escaped."""
    bar, gap, left, top, plot_h = 30, 14, 8, 46, 110
    width = max(180, left * 2 + len(pairs) * (2 * bar + gap))
    height = top + plot_h + 22
    hi = max(max(abs(b), abs(s)) for _, b, s in pairs) or 1.0
    arrow = "↑ higher is better" if col["higher_is_better"] else "↓ lower is better"
    dec = decimals_for("", [v for _, b, s in pairs for v in (b, s)]) if decimals is None else decimals
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc_html(col["label"])}: base vs +SB">',
             f'<text x="{left}" y="13" class="ct">{esc_html(col["label"])}</text>',
             f'<text x="{left}" y="26" class="cs">{esc_html(col["metric"])} {arrow}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - left}" y2="{top + plot_h}" class="axis"/>']
    for i, (name, b, s) in enumerate(pairs):
        x = left + i * (2 * bar + gap) + gap / 2
        for k, (v, cls, who) in enumerate(((b, "base", name), (s, "sb", f"{name}+SB"))):
            h = max(1.0, plot_h * abs(v) / hi)
            y = top + plot_h - h
            parts.append(f'<rect x="{x + k * bar:.1f}" y="{y:.1f}" width="{bar - 2}" height="{h:.1f}" class="{cls}">'
                         f"<title>{esc_html(who)}: {fmt(v, dec)}</title></rect>")
            parts.append(f'<text x="{x + k * bar + (bar - 2) / 2:.1f}" y="{y - 3:.1f}" class="vl" '
                         f'text-anchor="middle">{esc_html(fmt(v, dec))}</text>')
        short = name if len(name) <= 11 else name[:10] + "…"
        parts.append(f'<text x="{x + bar - 1:.1f}" y="{top + plot_h + 13}" class="xl" text-anchor="middle">'
                     f"<title>{esc_html(name)}</title>{esc_html(short)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _plots_html(data: dict[str, Any], group: dict[str, str], cols: list[dict[str, Any]], source: str) -> str:
    charts = []
    for c in cols:
        pairs, dec = _pairs(data, c, source)
        if pairs:
            charts.append(svg_bars(c, pairs, dec))
    if not charts:
        return ""
    return (f'<figure class="plot" data-source="{source}"><figcaption>{esc_html(group["label"])}: base vs +SB '
            f'({source}) <span class="legend"><i class="sw base"></i>base <i class="sw sb"></i>+SB</span>'
            f'</figcaption>{"".join(charts)}</figure>')


def _runs_html(data: dict[str, Any]) -> str:
    rows = []
    for e in data["entries"]:
        if e["source"] != "measured":
            continue
        for cid, cell in e["cells"].items():
            proto = "; ".join(f"{k[len('protocol.'):]}={v}" for k, v in cell["params"].items()
                              if k.startswith("protocol."))
            for rid, seed in zip(cell["run_ids"], cell["run_seeds"]):
                value = cell["values"][cell["seeds"].index(seed)]
                rows.append(f"<tr><td>{esc_html(e['label'])}</td><td>{esc_html(cid)}</td><td>{seed}</td>"
                            f"<td>{esc_html('' if value is None else fmt(value, 4))}</td><td><code>{esc_html(rid)}"
                            f"</code></td><td>{esc_html(cell['protocol'])}</td><td>v{cell['task_version']}"
                            f"{esc_html(' ' + cell['config_hash'][:8] if cell['config_hash'] else '')}</td>"
                            f"<td>{esc_html(', '.join(cell['weights']))}</td><td class=\"proto\">{esc_html(proto)}</td></tr>")
    if not rows:
        return '<p class="empty">No measured runs yet: run <code>bench run --encoder vit-tiny --tasks all</code>.</p>'
    return ('<details id="runs"><summary>Measured runs and their protocols</summary><table class="runs"><thead><tr>'
            "<th>encoder</th><th>task:metric</th><th>seed</th><th>value (seed mean)</th><th>run id</th><th>protocol</th>"
            "<th>task version / config</th><th>weights</th><th>protocol params</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></details>")


def _other_metrics_html(data: dict[str, Any]) -> str:
    """Reference and diagnostic metrics: behind a toggle, marked, never ranked or bolded."""
    items = data.get("other_metrics") or []
    if not items:
        return ""
    rows = "".join(
        f'<tr data-role="{esc_html(o["role"])}"><td>{esc_html(o["encoder"])}</td><td>{esc_html(o["task"])}'
        f'{esc_html(" (" + o["variant"] + ")" if o["variant"] else "")}</td><td>{esc_html(o["metric"])} '
        f'{"↑" if o["higher_is_better"] else "↓"}</td><td><span class="badge role-{esc_html(o["role"])}">'
        f'{esc_html(o["role"])}</span></td><td class="num" title="{esc_html(o["title"])}">{esc_html(o["text"])}</td></tr>'
        for o in items)
    return ('<details id="other-metrics"><summary>Reference and diagnostic metrics (not scores: floors such as '
            'chance or random rankings, selection scores; never ranked)</summary><table class="runs"><thead><tr>'
            "<th>encoder</th><th>task</th><th>metric</th><th>role</th><th>value</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></details>")


def render_page(data: dict[str, Any], catalog: Mapping[str, Any] | None = None) -> str:
    """The page of `build_data(...)`; `catalog` gives the "missing data" cells (None: "not run" only)."""
    groups = data["groups"]
    n_measured = sum(e["source"] == "measured" for e in data["entries"])
    n_paper = sum(e["source"] == "paper" for e in data["entries"])
    buttons = ['<button type="button" class="group-btn" data-group="all" aria-pressed="true">All</button>'] + [
        f'<button type="button" class="group-btn" data-group="{esc_html(g["id"])}" aria-pressed="false">'
        f'{esc_html(g["label"])}</button>' for g in groups]
    body = f"""
<header>
<h1>{esc_html(data['title'])}</h1>
<p class="meta">Built {esc_html(data['generated'])} from {n_measured} measured encoder(s) (MLflow runs) and
{n_paper} paper row(s). Each number is marked <span class="badge measured">measured</span> (with its run id;
hover for the protocol, click for details) or <span class="badge paper">paper</span> (reported in the paper).
Small coloured numbers after a +SB value: change vs its base (<span class="delta good">better</span> /
<span class="delta bad">worse</span> by the metric's direction). <strong>Bold</strong>: best of its source in the column.
↑/↓ after a column name: higher/lower is better; click a column name to sort (best first, click again to reverse;
missing values stay last).</p>
<p class="method"><strong>Ranking:</strong> {esc_html(data['rank_method'])}</p>
<p class="method" id="interval-method"><strong>Intervals:</strong> {esc_html(data.get('interval_method', ''))}
A +SB change marked <span class="delta same">n.s.</span> is not significant (its interval covers 0).</p>
</header>
<nav class="controls" aria-label="filters">
<div class="groups" role="group" aria-label="task group">{''.join(buttons)}</div>
<label>Source <select id="source-filter"><option value="all">measured + paper</option>
<option value="measured">measured</option><option value="paper">paper</option></select></label>
<label>Encoder <input id="encoder-filter" type="search" placeholder="filter by name" autocomplete="off"></label>
<span id="shown-count" aria-live="polite"></span>
</nav>
<main>
{''.join(_overall_html(data, b["id"]) + ''.join(_group_html(data, g, catalog, b["id"])
                                                 for g in _board_groups(data, b["id"]))
         for b in (data.get("boards") or [{"id": "paper"}]))}
<section class="board-section" data-group="runs">{_runs_html(data)}{_other_metrics_html(data)}</section>
</main>
<aside id="detail-panel" hidden><button type="button" id="detail-close" aria-label="close">×</button>
<h3 id="detail-title"></h3><dl id="detail-body"></dl></aside>
"""
    parts = {"TITLE": esc_html(data["title"]), "CSS": _static("style.css"), "BODY": body,
             "DATA": json_for_html(data), "JS": _static("app.js")}
    return re.sub(r"\{\{(TITLE|CSS|BODY|DATA|JS)\}\}", lambda m: parts[m.group(1)], _static("index.html"))


__all__ = ["SOURCES", "json_for_html", "render_page", "svg_bars"]
