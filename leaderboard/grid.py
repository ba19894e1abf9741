"""The table model and the rules every report shares, decided once.

`Grid` = columns + rows of `Cell`s that know their text, value, kind, boldness and delta sign; the
renderers (`leaderboard/render.py`) and the page (`leaderboard/site.py`) only draw them. The rules:

* **best**: per column, among encoder rows, the best value by the metric's direction is bold (ties:
  all; a column with a single value has no bold; only `score` columns compete) — `best_flags`.
* **delta**: +SB minus base, signed, marked good/bad by the metric's direction, "=" below the printed
  precision — `delta_cell`.
* **status**: no result for a pair is either "missing data" (the task's data is absent here, from
  `TaskMeta.data.status()`) or "not run" — `data_status` / `status_cell`.
* **decimals**: by the metric's unit where known ("%" -> 1, "m" -> 3), else by magnitude.
* **groups**: `bench.task.GROUPS`, in report order, with their labels.
* **order**: encoders alphabetically by base name, each variant (`NAME+sb`, `NAME+sb-TAG`) after its base.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from bench.encoders.naming import SB, parse_encoder_name
from bench.registry import UnknownNameError
from bench.task import GROUPS

NOT_RUN = "not run"
MISSING_DATA = "missing data"
GOOD_MARK, BAD_MARK, SAME_MARK = "✓", "✗", "="
NS_MARK = "n.s."  # a +SB delta whose 95% interval covers 0
OTHER_GROUP = "other"
UNIT_DECIMALS = {"%": 1, "m": 3}
ROLE_MARKS = {"score": "", "reference": "reference", "diagnostic": "diagnostic"}


# ---------------------------------------------------------------------------------------------
# Model
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
    lo: float | None = None  # 95% interval of the value (or of the delta)
    hi: float | None = None
    significant: bool | None = None  # delta cells: interval excludes 0 (None: no interval)


@dataclass
class Column:
    label: str
    higher_is_better: bool | None
    sub: str = ""  # "paper" / "ours" under a shared group header, or ""
    group: str = ""  # the header shared by paired columns (task label), or the task group's label
    title: str = ""
    role: str = "score"  # score | reference | diagnostic: only scores are bolded and compared
    unit: str = ""

    @property
    def arrow(self) -> str:
        return "" if self.higher_is_better is None else ("↑" if self.higher_is_better else "↓")

    @property
    def mark(self) -> str:
        """"[reference]" / "[diagnostic]" for columns that are not scores."""
        return f"[{ROLE_MARKS[self.role]}]" if ROLE_MARKS.get(self.role) else ""


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


# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------

def auto_decimals(values: Iterable[float | None]) -> int:
    """Decimals by magnitude: 3 below 10, 2 below 100, 1 above."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
    top = max(finite, default=0.0)
    return 1 if top >= 100 else 2 if top >= 10 else 3


def decimals_for(unit: str, values: Iterable[float | None]) -> int:
    """Decimals of a column: by its unit where known (% -> 1, m -> 3), else by magnitude."""
    return UNIT_DECIMALS[unit] if unit in UNIT_DECIMALS else auto_decimals(values)


def fmt(value: float | None, decimals: int) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value:.{decimals}f}"


def fmt_interval(lo: float | None, hi: float | None, decimals: int) -> str:
    """`[0.226, 0.734]`: a 95% interval; "" when there is none."""
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return ""
    return f"[{fmt(lo, decimals)}, {fmt(hi, decimals)}]"


def fmt_stats(mean: float | None, std: float | None, n: int, decimals: int, lo: float | None = None,
              hi: float | None = None) -> str:
    """`0.480 [0.226, 0.734] (n=2)`: the mean over distinct seeds and its 95% interval (`lo`, `hi`);
    without an interval, `0.480 ± 0.028 (n=2)` (std over seeds), a single seed just its value."""
    ci = fmt_interval(lo, hi, decimals)
    if ci:
        return f"{fmt(mean, decimals)} {ci}" + (f" (n={n})" if n > 1 else "")
    if n <= 1:
        return fmt(mean, decimals)
    return f"{fmt(mean, decimals)} ± {fmt(std or 0.0, decimals)} (n={n})"


def short_id(weights_id: str, n: int = 8) -> str:
    """A readable short form of a weights id: hex digests (optionally prefixed, `sb-…`) cut to `n`."""
    prefix, _, rest = weights_id.rpartition("-")
    if len(rest) > n and all(c in "0123456789abcdef" for c in rest.lower()):
        return (prefix + "-" if prefix else "") + rest[:n]
    return weights_id


# ---------------------------------------------------------------------------------------------
# Rules: best, delta, status
# ---------------------------------------------------------------------------------------------

def best_flags(values: Sequence[float | None], higher_is_better: bool | None) -> list[bool]:
    """Which values are the best of their column (ties: all; fewer than two values: none)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if higher_is_better is None or len(finite) < 2:  # a lone value is not "best" of anything
        return [False] * len(values)
    best = max(finite) if higher_is_better else min(finite)
    return [v is not None and math.isfinite(v) and math.isclose(v, best, rel_tol=1e-12, abs_tol=1e-12)
            for v in values]


def mark_best(grid: Grid) -> None:
    """Bold the best value of each score column among encoder rows (`best_flags`)."""
    for j, col in enumerate(grid.columns):
        if col.role != "score":
            continue
        cells = [r.cells[j] for r in grid.rows if r.kind == "encoder" and r.cells[j].kind == "value"]
        for c, best in zip(cells, best_flags([c.value for c in cells], col.higher_is_better)):
            c.bold = best


def delta_cell(base: float | None, boosted: float | None, higher_is_better: bool | None, decimals: int,
               source: str = "", base_label: str = "", ci: Any = None) -> Cell:
    """+SB minus base, signed, good/bad by direction; "=" when below the printed precision. With `ci`
    (a paired interval: lo, hi, significant, method) the interval follows the number, and a delta
    whose interval covers 0 is marked `NS_MARK` (not significant) instead of better / worse."""
    if base is None or boosted is None or not math.isfinite(base) or not math.isfinite(boosted):
        return Cell("", None, "empty")
    d = boosted - base
    vs = f" vs {base_label} ({fmt(base, decimals)})" if base_label else ""
    lo, hi, sig = (ci.lo, ci.hi, ci.significant) if ci is not None else (None, None, None)
    interval = fmt_interval(lo, hi, decimals)
    how = f"; 95% interval {interval} ({ci.method})" if interval else ""
    if sig is False:
        return Cell(f"{d:+.{decimals}f} {NS_MARK} {interval}", d, "delta", good=None, source=source, lo=lo, hi=hi,
                    significant=False, title=f"not significant: the 95% interval covers 0{vs}{how}")
    if abs(d) < 0.5 * 10 ** -decimals:
        return Cell(f"±{fmt(0.0, decimals)} {SAME_MARK}", d, "delta", good=None, title="no change" + vs + how,
                    source=source, lo=lo, hi=hi, significant=sig)
    good = None if higher_is_better is None else (d > 0) == higher_is_better
    mark = "" if good is None else (GOOD_MARK if good else BAD_MARK)
    title = ("" if good is None else ("better" if good else "worse") + " with +SB") + vs + how
    text = f"{d:+.{decimals}f} {mark}".strip() + (f" {interval}" if interval else "")
    return Cell(text, d, "delta", good=good, source=source, title=title.strip(), lo=lo, hi=hi, significant=sig)


# Protocol knobs whose value says a run did not follow the paper's protocol (robot `protocol=small`:
# fewer demos and episodes; segmentation `variant=fast`): the knob -> its paper value. Such a number is
# labelled with its variant and never set beside, bolded or ranked against a paper number.
PAPER_PROTOCOL = {"protocol.protocol": "paper", "protocol.variant": "faithful"}
VARIANT_MARK = "‡"


def protocol_deviation(params: Mapping[str, Any] | None) -> str:
    """"protocol=small" when a run's params name a non-paper protocol variant; "" for the paper's."""
    params = params or {}
    return ", ".join(f"{k[len('protocol.'):]}={params[k]}" for k, paper_value in PAPER_PROTOCOL.items()
                     if k in params and str(params[k]) != paper_value)


@dataclass(frozen=True)
class DataStatus:
    known: bool  # the task is in the catalog
    present: bool  # its data is here (or needs none / is generated on demand)
    where: str


def data_status(task: str, catalog: Mapping[str, Any] | None) -> DataStatus:
    """Is the task known, and is its data here? (`TaskMeta.data.status()`; never raises)."""
    if catalog is None:
        return DataStatus(True, True, "")
    meta = catalog.get(task)
    if meta is None:
        return DataStatus(False, False, "not a task of this registry yet")
    data = getattr(meta, "data", None)
    if data is None:
        return DataStatus(True, True, "no data needed")
    try:
        ok, where = data.status()
    except Exception as exc:  # a broken data source must not break a report
        ok, where = False, f"data status failed: {exc}"
    return DataStatus(True, bool(ok), str(where))


_WARNED: list[str] = []


def task_catalog() -> dict[str, Any]:
    """Every task's metadata (`tasks.catalog()`: no task code, no torch); {} with one warning when the
    catalog cannot be imported, so reports still build from the store alone (without data status)."""
    try:
        from tasks import catalog

        return catalog()
    except ImportError as exc:
        if not _WARNED:
            _WARNED.append(str(exc))
            print(f"warning: task metadata unavailable ({exc}); reports show no data status", file=sys.stderr)
        return {}


def status_cell(task: str, catalog: Mapping[str, Any] | None, source: str = "") -> Cell:
    """The cell of a pair without a result: "missing data" (with where it looked) or "not run"."""
    st = data_status(task, catalog)
    if not st.known:
        return Cell(NOT_RUN, None, "not-run", title=f"{task}: {st.where}", source=source)
    if not st.present:
        return Cell(MISSING_DATA, None, "missing-data", title=f"{task}: {st.where}", source=source)
    return Cell(NOT_RUN, None, "not-run", title=f"{task}: no finished run for this encoder", source=source)


# ---------------------------------------------------------------------------------------------
# Names, groups, order
# ---------------------------------------------------------------------------------------------

def split_name(name: str) -> tuple[str, str | None, str | None]:
    """(base, variant, tag) by the encoder name grammar; a name it rejects is a plain base."""
    try:
        n = parse_encoder_name(name)
    except UnknownNameError:
        return name, None, None
    return n.base, n.variant, n.tag


def sb_base(name: str) -> str | None:
    """The base of a SpatialBoost name (`X+sb`, `X+SB`, `X+sb-lora` -> `X`); None otherwise."""
    base, variant, _ = split_name(name)
    return base if variant == SB else None


def variant_suffix(name: str) -> str:
    """`+sb`, `+sb-lora`, `+SB` (as written) for a variant name; "" for a base."""
    base, variant, _ = split_name(name)
    return name[len(base):] if variant else ""


def encoder_order(names: Iterable[str]) -> list[str]:
    """Alphabetical by base name, each variant right after its base (the method before its ablations)."""
    def key(n: str):
        base, variant, tag = split_name(n)
        return (base.lower(), variant is not None, variant or "", tag is not None, tag or "", n)

    return sorted(dict.fromkeys(names), key=key)


GROUP_ORDER = tuple(GROUPS)


def group_rank(group: str) -> tuple[int, str]:
    return (GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER), group)


def group_label(group: str) -> str:
    return GROUPS.get(group) or ("Other" if group in ("", OTHER_GROUP) else group)


__all__ = ["BAD_MARK", "Cell", "Column", "DataStatus", "GOOD_MARK", "GROUP_ORDER", "Grid", "MISSING_DATA", "NOT_RUN",
           "PAPER_PROTOCOL", "VARIANT_MARK", "protocol_deviation",
           "Row", "SAME_MARK", "UNIT_DECIMALS", "auto_decimals", "best_flags", "data_status", "decimals_for",
           "delta_cell", "encoder_order", "fmt", "fmt_interval", "fmt_stats", "NS_MARK", "group_label", "group_rank", "mark_best", "sb_base",
           "short_id", "split_name", "status_cell", "task_catalog", "variant_suffix"]
