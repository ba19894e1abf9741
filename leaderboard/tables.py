"""Results tables: measured numbers (mean ± std over seeds) next to the paper's, in Markdown, LaTeX or HTML.

One table model (`Grid`: columns, rows of cells that know their value, status, boldness and delta
sign) and three renderers, so the rules — best value per column in bold by the metric's direction,
signed base -> +SB deltas marked good/bad by that direction, explicit "not run" / "missing data"
cells — are decided once. Every string that can come from run data is escaped by the renderer.
"""
from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import pandas as pd

from leaderboard import paper

NOT_RUN = "not run"
MISSING_DATA = "missing data"
GROUP_ORDER = ("depth", "segmentation", "classification", "retrieval", "3d", "robot", "vlm")
GROUP_LABELS = {"depth": "Depth", "segmentation": "Segmentation", "classification": "Classification",
                "retrieval": "Retrieval", "3d": "3D", "robot": "Robot", "vlm": "VLM", "other": "Other"}
GOOD_MARK, BAD_MARK, SAME_MARK = "✓", "✗", "="


# ---------------------------------------------------------------------------------------------
# Reading and aggregating run data
# ---------------------------------------------------------------------------------------------

def run_params(run_ids: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    """Params of every finished task run (protocol.*, group, encoder_label, ...) by run id."""
    from mlflow.tracking import MlflowClient

    from bench.paths import tracking_uri
    from bench.tracking import EXPERIMENT, KIND_TAG

    wanted = None if run_ids is None else set(run_ids)
    client = MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name(EXPERIMENT)
    out: dict[str, dict[str, str]] = {}
    if exp is None:
        return out
    token = None
    while True:
        page = client.search_runs([exp.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'task' "
                                  "and attributes.status = 'FINISHED'", max_results=1000, page_token=token)
        for run in page:
            if wanted is None or run.info.run_id in wanted:
                out[run.info.run_id] = dict(run.data.params)
        token = page.token
        if not token:
            break
    return out


def load_results(only_latest: bool = True, with_params: bool = True) -> pd.DataFrame:
    """`bench.tracking.read_results()` (newest run per encoder/task/metric/seed by default), with each
    run's params in a `params` column and its task group in `group`. Metrics without a direction tag
    (e.g. `wall_seconds`) are bookkeeping, not results, and are dropped."""
    from bench.tracking import read_results

    df = usable(read_results(only_latest=only_latest))
    params = run_params(set(df["run_id"])) if with_params and not df.empty else {}
    df["params"] = [params.get(r, {}) for r in df["run_id"]]
    df["group"] = [p.get("group") or "" for p in df["params"]]
    return df


def usable(results: pd.DataFrame) -> pd.DataFrame:
    """Rows that name an encoder and a task and whose metric has a direction."""
    if results is None or results.empty:
        return results
    keep = results["encoder"].notna() & results["task"].notna() & results["higher_is_better"].notna()
    return results[keep].reset_index(drop=True)


@dataclass(frozen=True)
class Measured:
    """One (encoder, task, metric) over its seeds."""

    mean: float
    std: float | None  # sample std (ddof=1); None for a single seed
    n: int
    values: tuple[float, ...]
    seeds: tuple[int, ...]
    run_ids: tuple[str, ...]
    protocol: str
    higher_is_better: bool | None
    params: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


def aggregate(results: pd.DataFrame) -> dict[tuple[str, str, str], Measured]:
    """Mean ± std (n) over seeds for every (encoder, task, metric) in tidy results."""
    out: dict[tuple[str, str, str], Measured] = {}
    results = usable(results)
    if results is None or results.empty:
        return out
    has_params = "params" in results.columns
    for (enc, task, metric), g in results.groupby(["encoder", "task", "metric"], sort=False):
        g = g.sort_values("seed")
        values = tuple(float(v) for v in g["value"])
        n = len(values)
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
        direction = next((bool(d) for d in g["higher_is_better"] if d is not None and not pd.isna(d)), None)
        protocols = sorted({str(p) for p in g["protocol"] if p})
        params = {}
        if has_params:
            for p in g["params"]:
                params.update({k: v for k, v in (p or {}).items()})
        out[(str(enc), str(task), str(metric))] = Measured(
            mean, std, n, values, tuple(int(s) for s in g["seed"]), tuple(str(r) for r in g["run_id"]),
            ", ".join(protocols), direction, params)
    return out


# ---------------------------------------------------------------------------------------------
# The table model
# ---------------------------------------------------------------------------------------------

@dataclass
class Cell:
    text: str = ""  # plain, unescaped
    value: float | None = None  # what bolding and sorting compare
    kind: str = "value"  # value | not-run | missing-data | empty | delta
    bold: bool = False
    good: bool | None = None  # delta cells: True = improvement by the metric's direction
    title: str = ""  # hover text: protocol, runs, notes
    source: str = ""  # measured | paper | ""


@dataclass
class Column:
    label: str
    higher_is_better: bool | None
    sub: str = ""  # "paper" / "ours" under a shared group header, or ""
    group: str = ""  # the header shared by paired columns (task label)
    title: str = ""

    @property
    def arrow(self) -> str:
        return "" if self.higher_is_better is None else ("↑" if self.higher_is_better else "↓")


@dataclass
class Row:
    label: str
    cells: list[Cell]
    kind: str = "encoder"  # encoder | delta
    title: str = ""


@dataclass
class Grid:
    title: str
    columns: list[Column]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)


def auto_decimals(values: Iterable[float]) -> int:
    """Decimals for a column: 3 below 10, 2 below 100, 1 above (RMSE in m, accuracies in %)."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
    top = max(finite, default=0.0)
    return 1 if top >= 100 else 2 if top >= 10 else 3


def fmt(value: float, decimals: int) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.{decimals}f}"


def fmt_stats(mean: float | None, std: float | None, n: int, decimals: int) -> str:
    """`0.480 ± 0.028 (n=2)` over repeated seeds; a single seed is just its value."""
    mean = float("nan") if mean is None else mean
    if n <= 1:
        return fmt(mean, decimals)
    return f"{fmt(mean, decimals)} ± {fmt(std or 0.0, decimals)} (n={n})"


def fmt_measured(m: Measured, decimals: int) -> str:
    return fmt_stats(m.mean, m.std, m.n, decimals)


def measured_title(m: Measured, task: str, metric: str) -> str:
    runs = ", ".join(f"{r} (seed {s})" for r, s in zip(m.run_ids, m.seeds))
    proto = {k[len("protocol."):]: v for k, v in m.params.items() if k.startswith("protocol.")}
    detail = "; ".join(f"{k}={v}" for k, v in sorted(proto.items()))
    direction = "" if m.higher_is_better is None else ("higher" if m.higher_is_better else "lower")
    return (f"measured {task}:{metric} ({direction} is better); protocol: {m.protocol or 'unknown'}"
            + (f" [{detail}]" if detail else "") + f"; n={m.n}; runs: {runs}")


def delta_cell(base: float | None, boosted: float | None, higher_is_better: bool | None, decimals: int,
               source: str = "") -> Cell:
    if base is None or boosted is None:
        return Cell("", None, "empty")
    d = boosted - base
    if abs(d) < 0.5 * 10 ** -decimals:
        return Cell(f"±{fmt(0.0, decimals)} {SAME_MARK}", d, "delta", good=None, title="no change", source=source)
    good = None if higher_is_better is None else (d > 0) == higher_is_better
    mark = "" if good is None else (GOOD_MARK if good else BAD_MARK)
    return Cell(f"{d:+.{decimals}f} {mark}".strip(), d, "delta", good=good, source=source,
                title=("better" if good else "worse") + " with +SB" if good is not None else "")


def mark_best(grid: Grid) -> None:
    """Bold the best value of each column among encoder rows, by that column's direction (ties: all;
    a column with a single value has no bold)."""
    for j, col in enumerate(grid.columns):
        if col.higher_is_better is None:
            continue
        vals = [r.cells[j].value for r in grid.rows if r.kind == "encoder" and r.cells[j].kind == "value"
                and r.cells[j].value is not None and math.isfinite(r.cells[j].value)]
        if len(vals) < 2:  # a lone value is not "best" of anything
            continue
        best = max(vals) if col.higher_is_better else min(vals)
        for r in grid.rows:
            c = r.cells[j]
            if r.kind == "encoder" and c.kind == "value" and c.value is not None and math.isclose(c.value, best):
                c.bold = True


def _status_cell(task: str, registered: dict) -> Cell:
    """No result: is it that the task's data is absent here, or that nobody ran it?"""
    t = registered.get(task)
    if t is not None:
        try:
            ok, where = t.data.status()
        except Exception as exc:  # a broken data source must not break the table
            ok, where = False, f"data status failed: {exc}"
        if not ok:
            return Cell(MISSING_DATA, None, "missing-data", title=f"{task}: {where}")
    else:
        return Cell(NOT_RUN, None, "not-run", title=f"{task}: not a task of this registry yet")
    return Cell(NOT_RUN, None, "not-run", title=f"{task}: no finished run for this encoder")


def registered_tasks() -> dict:
    return paper._registered_tasks()


# ---------------------------------------------------------------------------------------------
# Paper tables: reported next to measured
# ---------------------------------------------------------------------------------------------

def paper_grid(key: str | int, results: pd.DataFrame | None = None, registered: dict | None = None) -> Grid:
    """The layout of paper table `key` with a "paper" and an "ours" column per (task, metric)."""
    table = paper.get_table(key)
    registered = registered_tasks() if registered is None else registered
    measured = aggregate(results if results is not None else pd.DataFrame())
    columns: list[Column] = []
    spec = []  # per paper column: (paper task, paper metric, resolved TaskName, direction, decimals)
    for ptask, pmetric in table.columns:
        ours = paper.resolve_task(ptask, pmetric, registered)
        first = next(v for v in (table.get(e, ptask, pmetric) for e in table.encoders) if v is not None)
        hib = first.higher_is_better
        decimals = max(v.decimals for v in (table.get(e, ptask, pmetric) for e in table.encoders) if v)
        group = f"{ours.label} {'↑' if hib else '↓'}"
        where = f"paper: {ptask} / {pmetric}; ours: {ours.task} / {ours.metric}"
        columns.append(Column(ours.label, hib, "paper", group, where))
        columns.append(Column(ours.label, hib, "ours", group, where))
        spec.append((ptask, pmetric, ours, hib, decimals))

    rows: list[Row] = []
    values_by_row: dict[str, list[tuple[float | None, float | None]]] = {}
    notes: list[str] = []
    for enc in table.encoders:
        candidates = paper.zoo_candidates(enc)
        cells: list[Cell] = []
        pairs = []
        used_zoo = None
        for ptask, pmetric, ours, hib, decimals in spec:
            pv = table.get(enc, ptask, pmetric)
            if pv is None:
                cells.append(Cell("", None, "empty", source="paper"))
                p_val = None
            else:
                text = fmt(pv.value, pv.decimals) + (f" ± {fmt(pv.std, pv.decimals)}" if pv.std is not None else "")
                title = f"paper {table.title.split(':')[0]} ({pv.source}): {ptask} / {pmetric}"
                if pv.note:
                    notes.append(f"† {enc}, {ours.label}: {pv.note}.")
                    text += " †"
                    title += f"; note: {pv.note}"
                cells.append(Cell(text, pv.value, "value", title=title, source="paper"))
                p_val = pv.value
            m = next((measured[(z, ours.task, ours.metric)] for z in candidates
                      if (z, ours.task, ours.metric) in measured), None)
            if m is not None:
                used_zoo = used_zoo or next(z for z in candidates if (z, ours.task, ours.metric) in measured)
                cells.append(Cell(fmt_measured(m, decimals + 1), m.mean, "value",
                                  title=measured_title(m, ours.task, ours.metric), source="measured"))
                o_val = m.mean
            elif not candidates:
                cells.append(Cell(NOT_RUN, None, "not-run", title=f"{enc}: no encoder of our zoo corresponds"))
                o_val = None
            else:
                cells.append(_status_cell(ours.task, registered))
                o_val = None
            pairs.append((p_val, o_val))
        zoo = used_zoo or (candidates[0] if candidates else "")
        rows.append(Row(enc, cells, "encoder", title=f"ours: {zoo}" if zoo else "no zoo encoder"))
        values_by_row[enc] = pairs
        base = paper.sb_base(enc)
        if base is not None and base in values_by_row:
            dcells = []
            for (ptask, pmetric, ours, hib, decimals), (pb, ob), (ps, os_) in zip(spec, values_by_row[base], pairs):
                dcells.append(delta_cell(pb, ps, hib, decimals, "paper"))
                dcells.append(delta_cell(ob, os_, hib, decimals + 1, "measured"))
            rows.append(Row(f"Δ {base} → +SB", dcells, "delta"))
    grid = Grid(table.title, columns, rows, [])
    mark_best(grid)
    grid.notes = [
        "paper = reported in the paper; ours = measured here (mean ± std over seeds, n = number of seeds).",
        "Bold: best in the column by its direction (↑ higher / ↓ lower is better). "
        f"Δ rows: +SB minus base ({GOOD_MARK} better, {BAD_MARK} worse by the metric's direction).",
        f"{NOT_RUN}: no finished run here for that encoder and task; {MISSING_DATA}: the task's data is not "
        "present on this machine.",
        *dict.fromkeys(notes),
    ]
    return grid


# ---------------------------------------------------------------------------------------------
# Measured table: every encoder x task
# ---------------------------------------------------------------------------------------------

def encoder_order(names: Iterable[str]) -> list[str]:
    """Alphabetical by base name, each `NAME+sb` right after `NAME`."""
    names = list(dict.fromkeys(names))
    return sorted(names, key=lambda n: ((paper.sb_base(n) or n).lower(), paper.sb_base(n) is not None, n))


def group_rank(group: str) -> tuple[int, str]:
    return (GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER), group)


def measured_columns(results: pd.DataFrame, all_metrics: bool, registered: dict) -> list[tuple[str, str, str, bool | None]]:
    """(task, metric, group, higher_is_better) columns: each task's headline, or all of its metrics."""
    headlines_by_paper = {(t.task, t.metric) for t in paper.task_names().values() if t.headline}
    groups_by_task = {t.task: t.group for t in paper.task_names().values()}
    cols = []
    for task, g in results.groupby("task", sort=False):
        t = registered.get(task)
        group = (t.group if t is not None else "") or next((x for x in g.get("group", []) if x), "") \
            or groups_by_task.get(task, "other")
        metrics = sorted(set(g["metric"]))
        if not all_metrics:
            if t is not None and t.headline in metrics:
                metrics = [t.headline]
            else:
                mapped = [m for m in metrics if (task, m) in headlines_by_paper]
                metrics = mapped[:1] or metrics
        for metric in metrics:
            d = g.loc[g["metric"] == metric, "higher_is_better"]
            hib = next((bool(x) for x in d if x is not None and not pd.isna(x)), None)
            cols.append((str(task), str(metric), group, hib))
    return sorted(cols, key=lambda c: (group_rank(c[2]), c[0], c[1]))


def measured_grid(results: pd.DataFrame, all_metrics: bool = False, registered: dict | None = None) -> Grid:
    registered = registered_tasks() if registered is None else registered
    results = usable(results)
    if results is None or results.empty:
        return Grid("Measured results", [], [], ["(no results yet: run `bench run --encoder vit-tiny --tasks all`)"])
    measured = aggregate(results)
    cols = measured_columns(results, all_metrics, registered)
    decimals = {(t, m): auto_decimals(v.mean for k, v in measured.items() if k[1:] == (t, m)) for t, m, _, _ in cols}
    columns = [Column(f"{t}:{m}" if all_metrics else t, hib, "", GROUP_LABELS.get(g, g), f"{t} / {m} ({g})")
               for t, m, g, hib in cols]
    rows: list[Row] = []
    means: dict[str, list[float | None]] = {}
    for enc in encoder_order(results["encoder"]):
        cells, vals = [], []
        for t, m, _, _ in cols:
            got = measured.get((enc, t, m))
            if got is None:
                cells.append(_status_cell(t, registered))
                vals.append(None)
            else:
                cells.append(Cell(fmt_measured(got, decimals[(t, m)]), got.mean, "value",
                                  title=measured_title(got, t, m), source="measured"))
                vals.append(got.mean)
        rows.append(Row(enc, cells))
        means[enc] = vals
        base = paper.sb_base(enc)
        if base is not None and base in means:
            rows.append(Row(f"Δ {base} → +sb", [delta_cell(b, s, c[3], decimals[(c[0], c[1])], "measured")
                                                 for b, s, c in zip(means[base], vals, cols)], "delta"))
    grid = Grid("Measured results" + (" (all metrics)" if all_metrics else " (headline metric per task)"),
                columns, rows)
    mark_best(grid)
    grid.notes = [
        "Mean ± std over seeds (n = number of seeds; newest run per seed). Bold: best in the column by its "
        f"direction (↑ higher / ↓ lower is better). Δ rows: +sb minus base ({GOOD_MARK} better, {BAD_MARK} worse).",
        f"{NOT_RUN}: no finished run for that encoder and task; {MISSING_DATA}: the task's data is not present here.",
    ]
    return grid


# ---------------------------------------------------------------------------------------------
# Renderers
# ---------------------------------------------------------------------------------------------

def esc_html(text: Any) -> str:
    return html.escape(str(text), quote=True)


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
          ">": r"\textgreater{}", "|": r"\textbar{}", "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$",
          "→": r"$\rightarrow$", "Δ": r"$\Delta$", "✓": r"\checkmark{}", "✗": r"$\times$", "†": r"\dag{}",
          "\n": " "}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX))


def esc_latex(text: Any) -> str:
    return _LATEX_RE.sub(lambda m: _LATEX[m.group(0)], str(text))


_MD_RE = re.compile(r"([\\`*_\[\]|#])")


def esc_md(text: Any) -> str:
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")
    return _MD_RE.sub(r"\\\1", s)


def _header_label(col: Column) -> str:
    return f"{col.group} ({col.sub})" if col.sub else f"{col.label} {col.arrow}".strip()


def render_markdown(grid: Grid) -> str:
    lines = [f"**{esc_md(grid.title)}**", ""]
    if not grid.columns:
        return "\n".join(lines + [esc_md(n) for n in grid.notes])
    lines.append("| encoder | " + " | ".join(esc_md(_header_label(c)) for c in grid.columns) + " |")
    lines.append("|---|" + "---:|" * len(grid.columns))
    for row in grid.rows:
        label = esc_md(row.label) if row.kind == "encoder" else f"*{esc_md(row.label)}*"
        cells = []
        for c in row.cells:
            text = esc_md(c.text)
            if c.kind in ("not-run", "missing-data"):
                text = f"*{text}*"
            cells.append(f"**{text}**" if c.bold else text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [esc_md(n) for n in grid.notes]
    return "\n".join(lines) + "\n"


def render_latex(grid: Grid) -> str:
    """A booktabs tabular (needs \\usepackage{booktabs,xcolor,amssymb})."""
    if not grid.columns:
        return "% " + esc_latex(grid.title) + ": " + esc_latex(" ".join(grid.notes)) + "\n"
    out = [f"% {esc_latex(grid.title)}", "% needs \\usepackage{booktabs,xcolor,amssymb}",
           "\\begin{tabular}{l" + "r" * len(grid.columns) + "}", "\\toprule"]
    if any(c.sub for c in grid.columns):
        head, j = ["Encoder"], 0
        rules = []
        while j < len(grid.columns):
            k = j
            while k + 1 < len(grid.columns) and grid.columns[k + 1].group == grid.columns[j].group:
                k += 1
            head.append(f"\\multicolumn{{{k - j + 1}}}{{c}}{{{esc_latex(grid.columns[j].group)}}}")
            rules.append(f"\\cmidrule(lr){{{j + 2}-{k + 2}}}")
            j = k + 1
        out.append(" & ".join(head) + " \\\\")
        out.append(" ".join(rules))
        out.append(" & ".join([""] + [esc_latex(c.sub) for c in grid.columns]) + " \\\\")
    else:
        out.append(" & ".join(["Encoder"] + [esc_latex(_header_label(c)) for c in grid.columns]) + " \\\\")
    out.append("\\midrule")
    for row in grid.rows:
        cells = [esc_latex(row.label) if row.kind == "encoder" else f"\\textit{{{esc_latex(row.label)}}}"]
        for c in row.cells:
            text = esc_latex(c.text)
            if c.bold:
                text = f"\\textbf{{{text}}}"
            if c.kind == "delta" and c.good is not None:
                text = f"\\textcolor[rgb]{{{'0,0.5,0' if c.good else '0.75,0,0'}}}{{{text}}}"
            if c.kind in ("not-run", "missing-data"):
                text = f"\\textit{{{text}}}"
            cells.append(text)
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    out += [f"% {esc_latex(n)}" for n in grid.notes]
    return "\n".join(out) + "\n"


TABLE_CSS = """
table.bench{border-collapse:collapse;font:13px/1.35 system-ui,sans-serif}
table.bench th,table.bench td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}
table.bench thead th{text-align:center}
table.bench th:first-child,table.bench td:first-child{text-align:left}
table.bench tr.delta td{color:#555;font-style:italic;border-bottom:1px solid #bbb}
table.bench tr.delta td.good{color:#17803d}table.bench tr.delta td.bad{color:#b3261e}
body{font:13px/1.4 system-ui,sans-serif}p.note{margin:.3em 0;color:#555}
table.bench .not-run,table.bench .missing-data{color:#999;font-style:italic}
table.bench .sub-paper{background:#f6f6f6}
"""


def _html_cell(c: Column, cell: Cell) -> str:
    cls = [cell.kind] + ([f"sub-{c.sub}"] if c.sub else []) + (["good"] if cell.good is True else []) \
        + (["bad"] if cell.good is False else [])
    text = esc_html(cell.text)
    if cell.bold:
        text = f"<strong>{text}</strong>"
    value = "" if cell.value is None else repr(float(cell.value))
    return (f'<td class="{" ".join(cls)}" data-value="{esc_html(value)}"'
            + (f' title="{esc_html(cell.title)}"' if cell.title else "") + f">{text}</td>")


def render_html_table(grid: Grid) -> str:
    out = [f'<table class="bench"><caption>{esc_html(grid.title)}</caption><thead>']
    if any(c.sub for c in grid.columns):
        out.append('<tr><th rowspan="2">Encoder</th>')
        j = 0
        while j < len(grid.columns):
            k = j
            while k + 1 < len(grid.columns) and grid.columns[k + 1].group == grid.columns[j].group:
                k += 1
            out.append(f'<th colspan="{k - j + 1}" title="{esc_html(grid.columns[j].title)}">'
                       f"{esc_html(grid.columns[j].group)}</th>")
            j = k + 1
        out.append("</tr><tr>" + "".join(f"<th>{esc_html(c.sub)}</th>" for c in grid.columns) + "</tr>")
    else:
        out.append("<tr><th>Encoder</th>" + "".join(
            f'<th title="{esc_html(c.title)}">{esc_html(_header_label(c))}</th>' for c in grid.columns) + "</tr>")
    out.append("</thead><tbody>")
    for row in grid.rows:
        label = esc_html(row.label)
        out.append(f'<tr class="{row.kind}"' + (f' title="{esc_html(row.title)}"' if row.title else "")
                   + f"><td>{label}</td>" + "".join(_html_cell(c, cell) for c, cell in zip(grid.columns, row.cells))
                   + "</tr>")
    out.append("</tbody></table>")
    out += [f'<p class="note">{esc_html(n)}</p>' for n in grid.notes]
    return "\n".join(out)


def render_html(grid: Grid, standalone: bool = True) -> str:
    body = render_html_table(grid)
    if not standalone:
        return body
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc_html(grid.title)}</title><style>{TABLE_CSS}</style></head><body>\n{body}\n</body></html>\n")


RENDERERS = {"markdown": render_markdown, "latex": render_latex, "html": render_html}


def render(grid: Grid, fmt_name: str = "markdown") -> str:
    try:
        return RENDERERS[fmt_name](grid)
    except KeyError:
        raise ValueError(f"unknown format {fmt_name!r}; one of {', '.join(RENDERERS)}") from None


__all__ = ["Cell", "Column", "Grid", "MISSING_DATA", "Measured", "NOT_RUN", "Row", "aggregate", "esc_html",
           "esc_latex", "load_results", "measured_grid", "paper_grid", "render", "render_html", "render_latex",
           "render_markdown", "run_params"]
