"""Results tables: measured numbers (mean ± std over distinct seeds) alone or next to the paper's.

One pipeline for `bench run` (its closing summary), `bench table` and the leaderboard page:
records (`bench.store.read_records`) -> aggregation by identity and the encoder x task layout
(`leaderboard/measured.py`) -> a `Grid` whose cells the rules of `leaderboard/grid.py` decide (best
in bold, base -> +SB deltas, "not run" / "missing data") -> a renderer (`leaderboard/render.py`).
Task metadata comes from `tasks.catalog()` only: building a table imports no task code and no torch.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from bench.results import ResultRecord
from leaderboard import paper
from leaderboard.grid import (BAD_MARK, GOOD_MARK, MISSING_DATA, NOT_RUN, NS_MARK, VARIANT_MARK, Cell, Column, Grid, Row,
                              auto_decimals,
                              best_flags, data_status, decimals_for, delta_cell, encoder_order, fmt, fmt_stats,
                              group_label, group_rank, mark_best, sb_base, short_id, status_cell,
                              task_catalog, variant_suffix)
from leaderboard.measured import Measured, aggregate, measured_layout, measured_title
from leaderboard.render import (esc_html, esc_latex, esc_md, render, render_html, render_latex, render_markdown,
                                render_text)

INTERVAL_METHOD = ("95% intervals: percentile bootstrap over test items (2000 resamples, seed 0; per-item "
                   "scores stored with each run): accuracy per test image, AP and precision@k per query, "
                   "per-image depth errors, per-image pixel counts for mIoU / mAcc / aAcc (ratios of sums) "
                   "and (hit, label) rows for mean per-class accuracy; a corpus-level metric is recomputed on "
                   "every resample (the Met's GAP re-ranks the resampled queries). Student-t over seeds where "
                   "a run stored none (robot: its protocol seeds; a suite average: its members' per-seed "
                   "scores averaged seed by seed); +sb deltas: paired bootstrap on the same test items "
                   "(paired t over common seeds without items). A value without [..] had neither.")


def load_records(all_runs: bool = False):
    """Finished task and aggregate runs from the store (`bench.store.read_records`): the newest record
    per identity, or every run with `all_runs`. The result's `skipped` counts malformed runs."""
    from bench.store import read_records

    return read_records(all_runs=all_runs)


def fmt_measured(m: Measured, decimals: int) -> str:
    return fmt_stats(m.mean, m.std, m.n, decimals, m.lo, m.hi)


def _measured_cell(m: Measured, decimals: int, extra: str = "") -> Cell:
    return Cell(fmt_measured(m, decimals), m.mean, "value", title=measured_title(m) + extra, source="measured",
                lo=m.lo, hi=m.hi)


def _delta_ci(b: Measured, s: Measured):
    from leaderboard.intervals import delta_interval

    return delta_interval(b.interval, s.interval)


# ---------------------------------------------------------------------------------------------
# Measured table: every encoder x task
# ---------------------------------------------------------------------------------------------

MEASURED_TITLES = {"headline": "headline metric per task", "scores": "every score metric",
                   "all": "all metrics; [reference] and [diagnostic] columns are not scores"}


def _measured_grid(records: Sequence[ResultRecord], metrics: str, catalog: Mapping[str, Any] | None,
                   title: str) -> Grid:
    if not records:
        return Grid(title, [], [], ["(no results yet: run `bench run --encoder vit-tiny --tasks all`)"])
    layout = measured_layout(records, catalog, metrics)
    decimals = {c.key: decimals_for(c.unit, [m.mean for (_, ck), m in layout.cells.items() if ck == c.key])
                for c in layout.columns}
    columns = [Column(c.label, c.higher_is_better, "", group_label(c.group), c.title, c.role, c.unit)
               for c in layout.columns]
    ran = {(r, (c.task, c.task_version, c.config_hash)) for r, c in layout.cells}
    rows: list[Row] = []
    for spec in layout.rows:
        cells = []
        for c in layout.columns:
            m = layout.get(spec.key, c.key)
            if m is not None:
                cells.append(_measured_cell(m, decimals[c.key]))
            elif (spec.key, (c.key.task, c.key.task_version, c.key.config_hash)) in ran:
                cells.append(Cell("—", None, "empty", title=f"{c.key.task}: its runs did not report {c.key.metric}"))
            else:
                cells.append(status_cell(c.key.task, catalog))
        rows.append(Row(spec.label, cells, "encoder", spec.title))
        if spec.base is not None:
            dcells = []
            for c in layout.columns:
                b, s = layout.get(spec.base, c.key), layout.get(spec.key, c.key)
                if c.role != "score" or b is None or s is None:
                    dcells.append(Cell("", None, "empty"))
                else:
                    dcells.append(delta_cell(b.mean, s.mean, c.higher_is_better, decimals[c.key], "measured",
                                             spec.base.encoder, _delta_ci(b, s)))
            rows.append(Row(spec.delta_label, dcells, "delta"))
    grid = Grid(title, columns, rows)
    mark_best(grid)
    grid.notes = [
        "Mean over distinct seeds with its 95% interval [lo, hi] (n = number of seeds; newest run per identity "
        "unless --all-runs). Bold: best in the column by its direction (↑ higher / ↓ lower is better). Δ rows: "
        f"+sb minus base ({GOOD_MARK} better, {BAD_MARK} worse, {NS_MARK} = the paired interval covers 0: not "
        "significant).",
        INTERVAL_METHOD,
        f"{NOT_RUN}: no finished run for that encoder and task; {MISSING_DATA}: the task's data is not present here.",
        *layout.notes,
    ]
    return grid


def measured_grid(records: Sequence[ResultRecord], metrics: str = "headline",
                  catalog: Mapping[str, Any] | None = None) -> Grid:
    """Every measured encoder (rows; one per weights) x task (columns; one per task version / config).
    `metrics`: "headline" (default), "scores" (every score metric) or "all" (reference and diagnostic
    metrics too, marked). `catalog`: task metadata (default `tasks.catalog()`)."""
    catalog = task_catalog() if catalog is None else catalog
    return _measured_grid(records, metrics, catalog, f"Measured results ({MEASURED_TITLES[metrics]})")


def run_summary(records: Sequence[ResultRecord], title: str = "") -> str:
    """The text table `bench run` prints at its end: encoder x task headline (mean ± std over the run's
    seeds), base -> +SB delta rows, random-init encoders labelled by their `encoder_label`, ↑/↓ per column.
    Built from the records alone (no store, no task metadata), through the same grid as `bench table`.
    `title`: a first line (none by default: the caller prints its own heading)."""
    grid = _measured_grid(list(records), "headline", None, title)
    if grid.columns:
        cells = [c for r in grid.rows for c in r.cells]
        grid.notes = ["; ".join(["↑/↓: higher/lower is better"]
                                + (["*: best in the column"] if any(c.bold for c in cells) else [])
                                + ([f"Δ rows: +sb minus base ({GOOD_MARK} better, {BAD_MARK} worse)"]
                                   if any(r.kind == "delta" for r in grid.rows) else [])) + "."]
    return render_text(grid).rstrip("\n")


# ---------------------------------------------------------------------------------------------
# Paper tables: reported next to measured
# ---------------------------------------------------------------------------------------------

def _pick(found: list[Measured]) -> tuple[Measured, list[Measured]]:
    """The measured series a paper cell shows (the paper's protocol before a small variant, then the
    newest task version, then the newest run) and the others."""
    found = sorted(found, key=lambda m: (not m.deviation, m.series.task_version, m.start_time), reverse=True)
    return found[0], found[1:]


def _variant_cell(m: Measured, decimals: int, extra: str) -> Cell:
    """A measured number of a non-paper protocol variant beside a paper number: marked, never bold."""
    cell = _measured_cell(m, decimals, extra)
    cell.text += f" {VARIANT_MARK}"
    cell.title = (f"{m.deviation}: not the paper's protocol, not comparable with the reported number; "
                  + cell.title)
    cell.kind = "variant"  # not a "value": `mark_best` never compares it
    return cell


def _variant_text(m: Measured) -> str:
    s = m.series
    return f"{s.encoder} [w:{short_id(s.weights)}, v{s.task_version}" + (f", cfg {s.config_hash[:8]}" if s.config_hash
                                                                          else "") + f"] = {m.mean:.4g}"


def paper_grid(key: str | int, records: Sequence[ResultRecord] = (), catalog: Mapping[str, Any] | None = None) -> Grid:
    """The layout of paper table `key` with a "paper" and an "ours" column per (task, metric)."""
    table = paper.get_table(key)
    catalog = task_catalog() if catalog is None else catalog
    measured: dict[tuple[str, str, str], list[Measured]] = {}
    for (s, metric), m in aggregate(records, catalog).items():
        measured.setdefault((s.encoder, s.task, metric), []).append(m)
    columns: list[Column] = []
    spec = []  # per paper column: (paper task, paper metric, resolved TaskName, direction, decimals)
    for ptask, pmetric in table.columns:
        ours = paper.resolve_task(ptask, pmetric, catalog)
        reported = [v for v in (table.get(e, ptask, pmetric) for e in table.encoders) if v is not None]
        hib = reported[0].higher_is_better
        decimals = max(v.decimals for v in reported)
        group = f"{ours.label} {'↑' if hib else '↓'}"
        where = f"paper: {ptask} / {pmetric}; ours: {ours.task} / {ours.metric}"
        columns.append(Column(ours.label, hib, "paper", group, where))
        columns.append(Column(ours.label, hib, "ours", group, where))
        spec.append((ptask, pmetric, ours, hib, decimals))

    rows: list[Row] = []
    values_by_row: dict[str, list[tuple[float | None, float | None, Measured | None]]] = {}
    notes: list[str] = []
    variants: list[str] = []
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
            zoo = next((z for z in candidates if (z, ours.task, ours.metric) in measured), None)
            if zoo is not None:
                used_zoo = used_zoo or zoo
                m, others = _pick(measured[(zoo, ours.task, ours.metric)])
                extra = ("; other measured variants (not averaged in): " + "; ".join(map(_variant_text, others))
                         if others else "")
                if m.deviation:
                    cells.append(_variant_cell(m, decimals + 1, extra))
                    variants.append(f"{VARIANT_MARK} {enc}, {ours.label}: measured with {m.deviation}, not the "
                                    "paper's protocol: not comparable with the paper's number (not bolded).")
                else:
                    cells.append(_measured_cell(m, decimals + 1, extra))
                o_val = m.mean
                o_m = m
            elif not candidates:
                cells.append(Cell(NOT_RUN, None, "not-run", title=f"{enc}: no encoder of our zoo corresponds"))
                o_val = None
            else:
                cells.append(status_cell(ours.task, catalog, "measured"))
                o_val = None
            pairs.append((p_val, o_val, o_m if o_val is not None else None))
        zoo = used_zoo or (candidates[0] if candidates else "")
        rows.append(Row(enc, cells, "encoder", title=f"ours: {zoo}" if zoo else "no zoo encoder"))
        values_by_row[enc] = pairs
        base = sb_base(enc)
        if base is not None and base in values_by_row:
            dcells = []
            for (ptask, pmetric, ours, hib, decimals), (pb, ob, mb), (ps, os_, ms) in zip(spec, values_by_row[base], pairs):
                dcells.append(delta_cell(pb, ps, hib, decimals, "paper", base))
                if mb is not None and ms is not None and mb.deviation != ms.deviation:
                    ob = os_ = None  # base and +SB under different protocol variants: no delta
                dcells.append(delta_cell(ob, os_, hib, decimals + 1, "measured", base,
                                         _delta_ci(mb, ms) if mb is not None and ms is not None else None))
            rows.append(Row(f"Δ {base} → {variant_suffix(enc)}", dcells, "delta"))
    grid = Grid(table.title, columns, rows, [])
    mark_best(grid)
    grid.notes = [
        "paper = reported in the paper; ours = measured here (mean ± std over distinct seeds, n = number of seeds; "
        "with several weights / task versions of one encoder, the newest version is shown, the others in its hover).",
        "Bold: best in the column by its direction (↑ higher / ↓ lower is better). "
        f"Δ rows: +SB minus base ({GOOD_MARK} better, {BAD_MARK} worse by the metric's direction).",
        f"{NOT_RUN}: no finished run here for that encoder and task; {MISSING_DATA}: the task's data is not "
        "present on this machine.",
        *dict.fromkeys(notes),
        *dict.fromkeys(variants),
    ]
    return grid


__all__ = ["Cell", "Column", "Grid", "MISSING_DATA", "Measured", "NOT_RUN", "Row", "aggregate", "auto_decimals",
           "best_flags", "data_status", "decimals_for", "delta_cell", "encoder_order", "esc_html", "esc_latex",
           "esc_md", "fmt", "fmt_measured", "fmt_stats", "group_label", "group_rank", "load_records", "mark_best",
           "measured_grid", "measured_layout", "measured_title", "paper_grid", "render", "render_html",
           "render_latex", "render_markdown", "render_text", "run_summary", "status_cell", "task_catalog"]
