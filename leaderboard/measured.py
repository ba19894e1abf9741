"""Measured numbers: records aggregated by identity, and the encoder x task layout every report uses.

**Aggregation.** A `Series` is a record identity without its seed: (encoder, weights, task,
task_version, config_hash). Only records of one series are averaged; n counts *distinct* seeds (with
`--all-runs`, several runs of one seed are first averaged into that seed's value). Records with other
weights, another task version or another config are another series: another row (weights) or
another column (version / config), labelled so a reader can tell them apart, never averaged in.
Random-init weights derived from the run's own seed (`random-init(seed=N)` with N = the seed) are one
setting across seeds, so random-init encoders do aggregate over seeds.

**Layout.** Rows = (encoder, weights); columns = (task, task version, config hash, metric); a cell =
one `Measured`. Metric role and unit come from the record (its tags) or, for older runs without them,
from the task's metadata; the headline from the metadata, else the record.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from bench.results import ResultRecord
from leaderboard.intervals import cell_interval, default_breakdown, default_items, protocol_seed_values
from leaderboard.grid import (OTHER_GROUP, encoder_order, group_rank, protocol_deviation, sb_base, short_id,
                              variant_suffix)

RANDOM_INIT = re.compile(r"^random-init\(seed=([+-]?\d+)\)$")
SEED_WEIGHTS = "random-init(seed=run)"
METRIC_MODES = ("headline", "scores", "all")
ROLE_ORDER = {"score": 0, "reference": 1, "diagnostic": 2}


def weights_key(rec: ResultRecord) -> str:
    m = RANDOM_INIT.match(rec.weights_id or "")
    return SEED_WEIGHTS if m and int(m.group(1)) == rec.seed else rec.weights_id


@dataclass(frozen=True)
class Series:
    encoder: str
    weights: str
    task: str
    task_version: int
    config_hash: str


@dataclass
class Measured:
    """One series x metric over its distinct seeds."""

    series: Series
    metric: str
    mean: float
    std: float | None  # sample std (ddof=1) over seeds; None for a single seed
    n: int  # distinct seeds
    values: tuple[float, ...]  # per seed (mean of that seed's runs)
    seeds: tuple[int, ...]
    run_ids: tuple[str, ...]
    run_seeds: tuple[int, ...]  # seed of each run id
    protocol: str
    higher_is_better: bool
    role: str = "score"
    unit: str = ""
    encoder_label: str = ""
    weights_ids: tuple[str, ...] = ()
    start_time: int = 0  # of the newest run
    params: dict[str, str] = field(default_factory=dict)  # of the newest run
    lo: float | None = None  # 95% interval (leaderboard/intervals.py); None: none computable
    hi: float | None = None
    ci_method: str = ""
    interval: Any = field(default=None, repr=False, compare=False)  # intervals.CellInterval (for paired deltas)
    deviation: str = ""  # "protocol=small": a non-paper protocol variant (`record_deviation`); "" = the paper's

    @property
    def encoder(self) -> str:
        return self.series.encoder


    @property
    def task(self) -> str:
        return self.series.task


def _metric_meta(catalog: Mapping[str, Any] | None, task: str, metric: str):
    meta = (catalog or {}).get(task)
    for m in getattr(meta, "metrics", ()) or ():
        if m.name == metric:
            return m
    return None


def record_deviation(r: ResultRecord, member_of: Callable[[ResultRecord, str], ResultRecord | None],
                     depth: int = 0) -> str:
    """A run's non-paper protocol variant ("protocol=small"; `grid.protocol_deviation`). A suite
    aggregate has no protocol knobs of its own: it is as far from the paper as its members are."""
    own = protocol_deviation(r.params)
    members = [m for m in str(r.params.get("members", "")).split(",") if m]
    if r.kind != "aggregate" or not members or depth > 3:
        return own
    found = {own} | {record_deviation(m, member_of, depth + 1) for m in map(lambda t: member_of(r, t), members) if m}
    return ", ".join(sorted(found - {""}))


def aggregate(records: Iterable[ResultRecord], catalog: Mapping[str, Any] | None = None, *,
              item_source: Callable[[ResultRecord], dict] | None = default_items,
              breakdown_source: Callable[[ResultRecord], dict] | None = default_breakdown
              ) -> dict[tuple[Series, str], Measured]:
    """Mean ± std (n distinct seeds) and the 95% interval of every (series, metric). `item_source` /
    `breakdown_source`: a record's per-item scores / breakdown (default: from the store; None: no lookups,
    intervals from seeds only)."""
    groups: dict[tuple[Series, str], list[tuple[ResultRecord, Any]]] = {}
    records_list = list(records)
    for r in records_list:
        s = Series(r.encoder, weights_key(r), r.task, int(r.task_version), r.config_hash)
        for name, mv in r.metrics.items():
            groups.setdefault((s, name), []).append((r, mv))
    cache: dict[str, dict] = {}
    bcache: dict[str, dict] = {}

    def fetch(r: ResultRecord) -> dict:
        if item_source is None:
            return {}
        if r.run_id not in cache:
            cache[r.run_id] = item_source(r) or {}
        return cache[r.run_id]

    def fetch_breakdown(r: ResultRecord) -> dict:
        if breakdown_source is None:
            return {}
        if r.run_id not in bcache:
            bcache[r.run_id] = breakdown_source(r) or {}
        return bcache[r.run_id]

    by_run_key: dict[tuple, list[ResultRecord]] = {}
    for r in sorted(records_list, key=lambda r: (r.start_time, r.run_id)):
        by_run_key.setdefault((r.encoder, r.weights_id, r.seed, r.task), []).append(r)

    def member_of(r: ResultRecord, task: str) -> ResultRecord | None:
        """The member run a suite aggregate averaged: the newest one that started before it."""
        found = by_run_key.get((r.encoder, r.weights_id, r.seed, task), [])
        before = [m for m in found if m.start_time <= r.start_time]
        return (before or found or [None])[-1]

    out: dict[tuple[Series, str], Measured] = {}
    for (s, name), items in groups.items():
        items.sort(key=lambda x: (x[0].seed, x[0].start_time, x[0].run_id))
        by_seed: dict[int, list[float]] = {}
        for r, mv in items:
            by_seed.setdefault(r.seed, []).append(float(mv.value))
        values = tuple(sum(v) / len(v) for v in by_seed.values())
        n = len(values)
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
        newest_rec, newest_mv = max(items, key=lambda x: (x[0].start_time, x[0].run_id))
        newest_of_seed = {}
        for r, _ in items:  # sorted by start time within a seed: the last one wins
            newest_of_seed[r.seed] = r
        per_seed_items = [fetch(r).get(name) for r in newest_of_seed.values()]
        robot = list(protocol_seed_values(newest_rec, name, fetch_breakdown, member_of).values()) \
            if n == 1 and breakdown_source is not None and newest_rec.group == "robot" else []
        ci = cell_interval(name, tuple(by_seed), values, per_seed_items, robot)
        declared = _metric_meta(catalog, s.task, name)
        role = newest_mv.role if newest_mv.role != "score" or declared is None else declared.role
        unit = newest_mv.unit or (declared.unit if declared is not None else "")
        out[(s, name)] = Measured(
            s, name, mean, std, n, values, tuple(by_seed), tuple(r.run_id for r, _ in items),
            tuple(r.seed for r, _ in items), ", ".join(sorted({r.protocol for r, _ in items if r.protocol})),
            bool(newest_mv.higher_is_better), role, unit, newest_rec.encoder_label or s.encoder,
            tuple(sorted({r.weights_id for r, _ in items})), newest_rec.start_time, dict(newest_rec.params),
            ci.lo, ci.hi, ci.method, ci, record_deviation(newest_rec, member_of))
    return out


def measured_title(m: Measured) -> str:
    """Hover text: what was measured, under which protocol, on which runs."""
    runs = ", ".join(f"{r} (seed {s})" for r, s in zip(m.run_ids, m.run_seeds))
    proto = {k[len("protocol."):]: v for k, v in m.params.items() if k.startswith("protocol.")}
    detail = "; ".join(f"{k}={v}" for k, v in sorted(proto.items()))
    unit = f", {m.unit}" if m.unit else ""
    role = "" if m.role == "score" else f" [{m.role}]"
    s = m.series
    cfg = f", config {s.config_hash[:8]}" if s.config_hash else ""
    weights = ", ".join(short_id(w) for w in m.weights_ids) or "unknown"
    return (f"measured {s.task}:{m.metric}{role} ({'higher' if m.higher_is_better else 'lower'} is better{unit}); "
            f"protocol: {m.protocol or 'unknown'}" + (f" [{detail}]" if detail else "")
            + f"; task v{s.task_version}{cfg}; weights {weights}; n={m.n}; "
            + (f"95% interval [{m.lo:.4g}, {m.hi:.4g}] ({m.ci_method})" if m.lo is not None and m.hi is not None
               else (m.ci_method or "no interval")) + f"; runs: {runs}")


# ---------------------------------------------------------------------------------------------
# Layout: rows (encoder, weights) x columns (task variant, metric)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RowKey:
    encoder: str
    weights: str


@dataclass(frozen=True)
class ColKey:
    task: str
    task_version: int
    config_hash: str
    metric: str


@dataclass
class RowSpec:
    key: RowKey
    label: str
    title: str
    base: RowKey | None = None  # the base row of a +SB variant (delta rows)
    delta_label: str = ""


@dataclass
class ColSpec:
    key: ColKey
    id: str  # "task:metric", plus "@v2" / "#cfg" when the task has several variants in the store
    label: str  # the task (headline mode) or "task:metric", plus the variant
    variant: str  # "" or "v2" / "v1, cfg 1a2b3c4d"
    group: str
    higher_is_better: bool
    role: str
    unit: str
    title: str
    newest: int = 0  # start time of its newest run
    headline: bool = True  # the task's headline metric


@dataclass
class Layout:
    rows: list[RowSpec]
    columns: list[ColSpec]
    cells: dict[tuple[RowKey, ColKey], Measured]
    notes: list[str] = field(default_factory=list)

    def get(self, row: RowKey, col: ColKey) -> Measured | None:
        return self.cells.get((row, col))


def _headline(task: str, metrics: set[str], recs: Sequence[ResultRecord], catalog, paper_headlines) -> str:
    meta = (catalog or {}).get(task)
    if meta is not None and meta.headline in metrics:
        return meta.headline
    tagged = Counter(r.headline for r in recs if r.headline in metrics)
    if tagged:
        return tagged.most_common(1)[0][0]
    mapped = sorted(m for m in metrics if (task, m) in paper_headlines)
    if mapped:
        return mapped[0]
    scores = sorted(m for m in metrics if all(r.metrics[m].role == "score" for r in recs if m in r.metrics))
    return (scores or sorted(metrics))[0]


def _group(task: str, recs: Sequence[ResultRecord], catalog, paper_groups) -> str:
    meta = (catalog or {}).get(task)
    return (getattr(meta, "group", "") or next((r.group for r in recs if r.group), "")
            or paper_groups.get(task, OTHER_GROUP))


def measured_layout(records: Sequence[ResultRecord], catalog: Mapping[str, Any] | None = None,
                    metrics: str = "headline") -> Layout:
    """The encoder x task layout of `records`. `metrics`: "headline" (each task's headline),
    "scores" (every score metric) or "all" (also reference and diagnostic metrics)."""
    from leaderboard import paper

    if metrics not in METRIC_MODES:
        raise ValueError(f"metrics must be one of {METRIC_MODES}, got {metrics!r}")
    measured = aggregate(records, catalog)
    by_column: dict[ColKey, list[Measured]] = {}
    for (s, name), m in measured.items():
        by_column.setdefault(ColKey(s.task, s.task_version, s.config_hash, name), []).append(m)
    paper_headlines = {(t.task, t.metric) for t in paper.task_names().values() if t.headline}
    paper_groups = {t.task: t.group for t in paper.task_names().values()}

    # columns
    by_task: dict[str, dict[tuple[int, str], list[ResultRecord]]] = {}
    for r in records:
        by_task.setdefault(r.task, {}).setdefault((int(r.task_version), r.config_hash), []).append(r)
    columns: list[ColSpec] = []
    for task, variants in by_task.items():
        versions = {v for v, _ in variants}
        group = _group(task, [r for rs in variants.values() for r in rs], catalog, paper_groups)
        for (version, cfg), recs in sorted(variants.items()):
            names = {m for r in recs for m in r.metrics}
            same_version = [c for v, c in variants if v == version]
            tag = ", ".join(([f"v{version}"] if len(versions) > 1 else [])
                            + ([f"cfg {cfg[:8] or 'none'}"] if len(same_version) > 1 else []))
            head = _headline(task, names, recs, catalog, paper_headlines)
            deviation = max(by_column[ColKey(task, version, cfg, head)], key=lambda m: m.start_time).deviation
            tag = ", ".join(t for t in (tag, deviation) if t)  # "protocol=small": always named in the label
            chosen = [head] if metrics == "headline" else sorted(names)
            for metric in chosen:
                cells = by_column[ColKey(task, version, cfg, metric)]
                newest = max(cells, key=lambda m: m.start_time)
                if metrics == "scores" and newest.role != "score":
                    continue
                base = task if metrics == "headline" else f"{task}:{metric}"
                cid = f"{task}:{metric}" + ("" if len(variants) == 1 else f"@v{version}" + (f"#{cfg[:8]}" if cfg else ""))
                unit = f", {newest.unit}" if newest.unit else ""
                role = "" if newest.role == "score" else f"; {newest.role}, not a score"
                columns.append(ColSpec(
                    ColKey(task, version, cfg, metric), cid, f"{base} ({tag})" if tag else base, tag, group,
                    newest.higher_is_better, newest.role, newest.unit,
                    f"{task} / {metric} ({group}{unit}); task v{version}" + (f", config {cfg[:8]}" if cfg else "")
                    + role, max(m.start_time for m in cells), metric == head))
    columns.sort(key=lambda c: (group_rank(c.group), c.key.task, c.key.task_version, c.key.config_hash,
                                not c.headline, ROLE_ORDER.get(c.role, 3), c.key.metric))

    # rows
    keys: dict[RowKey, list[Measured]] = {}
    for (s, _), m in measured.items():
        keys.setdefault(RowKey(s.encoder, s.weights), []).append(m)
    weights_of: dict[str, list[str]] = {}
    for k in keys:
        weights_of.setdefault(k.encoder, []).append(k.weights)
    rows: list[RowSpec] = []
    for enc in encoder_order(k.encoder for k in keys):
        for w in sorted(weights_of[enc]):
            key = RowKey(enc, w)
            newest = max(keys[key], key=lambda m: m.start_time)
            label = newest.encoder_label or enc
            if len(weights_of[enc]) > 1:
                label += f" [w:{short_id(w)}]"
            title = f"zoo encoder {enc}" + (f" ({newest.encoder_label})" if newest.encoder_label not in ("", enc)
                                             else "") + f"; weights {', '.join(newest.weights_ids) or 'unknown'}"
            spec = RowSpec(key, label, title)
            base = sb_base(enc)
            if base is not None and base in weights_of:
                wanted = newest.params.get("base_weights_id")
                bases = weights_of[base] if len(weights_of[base]) == 1 else [b for b in weights_of[base] if b == wanted]
                if bases:
                    spec.base = RowKey(base, bases[0])
                    spec.delta_label = f"Δ {base} → {variant_suffix(enc)}"
            rows.append(spec)
    cells = {(RowKey(s.encoder, s.weights), ColKey(s.task, s.task_version, s.config_hash, name)): m
             for (s, name), m in measured.items()}
    notes = []
    if any(len(v) > 1 for v in weights_of.values()):
        notes.append("[w:…] = the weights an encoder row was measured with (short id); rows with different "
                     "weights are never averaged together.")
    if any(c.variant for c in columns):
        notes.append("(vN, cfg …) = a task version / protocol config of a task with several in the store; "
                     "numbers of different versions or configs are never averaged together. (protocol=small, "
                     "variant=fast) = runs under a documented non-paper protocol variant: not comparable with "
                     "the paper's numbers.")
    return Layout(rows, columns, cells, notes)


__all__ = ["ColKey", "ColSpec", "Layout", "METRIC_MODES", "Measured", "RowKey", "RowSpec", "Series", "aggregate",
           "record_deviation",
           "measured_layout", "measured_title", "weights_key"]
