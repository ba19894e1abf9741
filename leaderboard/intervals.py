"""95% intervals for measured cells and +SB deltas, from the per-item scores stored with each run.

Which estimator a cell gets (`bench.stats` holds the maths; the method text is on every page):

* **items** -- the run stored per-item scores (`items.npz`: kNN / linear hits per test image, AP per
  query, per-image depth errors, per-image intersection / union counts): percentile bootstrap over
  test items. Several seeds of one series score the same test items, so each resample takes the
  same items from every seed and the statistic is the mean over seeds.
* **seeds** -- robot tasks (protocol seeds inside a run, from the run's env/seed breakdown; a suite
  average takes its members' per-seed scores and averages them seed by seed) or a series with >= 2
  seeds but no per-item scores (older runs): Student-t over the seed values.
* none -- one seed and no per-item scores: the number is shown without an interval, and says why.

A +SB delta gets a paired bootstrap when both sides have aligned items (same test items), else a
paired t over the seeds both ran; it is *significant* when its interval excludes 0.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from bench import stats

SEED_ROW = re.compile(r"^env:(?P<env>[^/]+)/seed:(?P<seed>-?\d+)$")
NO_INTERVAL = "no interval: one seed and no per-item scores stored"


@dataclass
class Boot:
    """Aligned per-item values of a series (items first) and the statistic that gives the metric."""

    values: np.ndarray
    statistic: Callable
    scale: float

    def value(self, arr: np.ndarray) -> float:
        return self.scale * float(self.statistic(arr))


def _mean_over_seeds(fn: Callable) -> Callable:
    def stat(arr: np.ndarray) -> float:
        return float(np.mean([fn(arr[:, s]) for s in range(arr.shape[1])]))
    return stat


def series_boot(per_seed: Sequence[Any]) -> Boot | None:
    """One `Boot` from each seed's ItemScores of a metric (None unless all align)."""
    if not per_seed or any(it is None for it in per_seed):
        return None
    arrays = [np.asarray(it.values, dtype=float) for it in per_seed]
    if len({a.shape for a in arrays}) != 1 or len({(it.statistic, it.scale) for it in per_seed}) != 1 \
            or arrays[0].shape[0] < 2:
        return None
    fn, scale = stats.item_statistic(per_seed[0].statistic), float(per_seed[0].scale)
    if len(arrays) == 1:
        return Boot(arrays[0], fn, scale)
    if per_seed[0].statistic == "mean" and arrays[0].ndim == 1:  # mean of means = mean of per-item means
        return Boot(np.mean(arrays, axis=0), np.mean, scale)
    return Boot(np.stack(arrays, axis=1), _mean_over_seeds(fn), scale)


def robot_seed_values(breakdown: dict[str, dict[str, float]], metric: str) -> list[float]:
    """Per protocol seed, the mean over environments of `metric` (the suite score of that seed)."""
    by_seed: dict[int, list[float]] = {}
    for key, row in breakdown.items():
        m = SEED_ROW.match(key)
        if m and metric in row and row[metric] is not None and math.isfinite(float(row[metric])):
            by_seed.setdefault(int(m.group("seed")), []).append(float(row[metric]))
    return [float(np.mean(v)) for _, v in sorted(by_seed.items())]


def protocol_seed_values(record, metric: str, breakdown_of: Callable, member_of: Callable, depth: int = 0
                         ) -> dict[int, float]:
    """Protocol seed -> score of a robot run: from its (env, seed) breakdown, or, for a suite
    aggregate (its breakdown names `member:` / `suite:` rows), the same mean over its members'
    (or suites') per-seed scores, seed by seed. {} when a member or a seed is missing.
    `member_of(record, task)`: the stored record of that task for the same encoder, weights, seed."""
    breakdown = breakdown_of(record) or {}
    values = robot_seed_values(breakdown, metric)
    if values:
        seeds = sorted({int(m.group("seed")) for k in breakdown if (m := SEED_ROW.match(k))})
        return dict(zip(seeds, values)) if len(seeds) == len(values) else {}
    if depth > 3:
        return {}
    suites = [k[len("suite:"):] for k in breakdown if k.startswith("suite:")]
    parts = suites or [k[len("member:"):] for k in breakdown if k.startswith("member:")]
    per_part = []
    for task in parts:
        child = member_of(record, task)
        got = protocol_seed_values(child, child.headline, breakdown_of, member_of, depth + 1) if child else {}
        if not got:
            return {}
        per_part.append(got)
    common = sorted(set.intersection(*(set(p) for p in per_part))) if per_part else []
    return {s: float(np.mean([p[s] for p in per_part])) for s in common}


@dataclass
class CellInterval:
    lo: float | None
    hi: float | None
    method: str  # "bootstrap over N test items (S seeds)" | "t over N seeds" | NO_INTERVAL
    boot: Boot | None = None
    seed_values: dict[int, float] | None = None


def _finite(x: float) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def cell_interval(metric: str, seeds: Sequence[int], seed_values: Sequence[float], per_seed_items: Sequence[Any],
                  robot_seeds: Sequence[float] = ()) -> CellInterval:
    """The interval of one series x metric (see the module docstring for the order of estimators)."""
    by_seed = dict(zip(seeds, seed_values))
    boot = series_boot(per_seed_items)
    if boot is not None:
        ci = stats.bootstrap_ci(boot.values, boot.statistic)
        lo, hi = _finite(boot.scale * ci.lo), _finite(boot.scale * ci.hi)
        if lo is not None:
            extra = f", {len(seeds)} seeds" if len(seeds) > 1 else ""
            return CellInterval(lo, hi, f"bootstrap over {boot.values.shape[0]} test items{extra}", boot, by_seed)
    protocol = len(robot_seeds) > 1 and len(seeds) == 1  # seeds inside one run (robot breakdown)
    values = list(robot_seeds) if protocol else list(seed_values)
    if len(values) > 1:
        ci = stats.seed_interval(values)
        what = "protocol seeds" if protocol else "seeds"
        return CellInterval(_finite(ci.lo), _finite(ci.hi), f"t over {len(values)} {what}", None, by_seed)
    return CellInterval(None, None, NO_INTERVAL, None, by_seed)


@dataclass
class DeltaCI:
    lo: float | None
    hi: float | None
    significant: bool | None  # None: no interval could be computed
    method: str


def delta_interval(base: CellInterval | None, boosted: CellInterval | None) -> DeltaCI:
    """Paired interval of boosted - base: bootstrap on aligned items, else paired t over common seeds."""
    if base is None or boosted is None:
        return DeltaCI(None, None, None, "")
    b, s = base.boot, boosted.boot
    if b is not None and s is not None and b.values.shape == s.values.shape and b.scale == s.scale:
        d = stats.paired_bootstrap_delta(b.values, s.values, b.statistic)
        if math.isfinite(d.lo):
            return DeltaCI(b.scale * d.lo, b.scale * d.hi, d.significant,
                           f"paired bootstrap over {b.values.shape[0]} test items")
    common = sorted(set(base.seed_values or {}) & set(boosted.seed_values or {}))
    if len(common) > 1:
        diffs = [boosted.seed_values[k] - base.seed_values[k] for k in common]
        ci = stats.seed_interval(diffs)
        if math.isfinite(ci.lo):
            return DeltaCI(ci.lo, ci.hi, bool(ci.lo > 0 or ci.hi < 0), f"paired t over {len(common)} seeds")
    return DeltaCI(None, None, None, "no interval (no aligned per-item scores or common seeds)")


def default_items(record) -> dict:
    """A record's stored per-item scores; {} when the store cannot say (never fails a report)."""
    if getattr(record, "kind", "task") != "task" or not getattr(record, "run_id", ""):
        return {}
    try:
        from bench.store import read_items

        return read_items(record)
    except Exception:  # noqa: BLE001 - a report without intervals beats no report
        return {}


def default_breakdown(record) -> dict:
    """Robot runs keep their per-(env, seed) scores in the breakdown artifact."""
    if getattr(record, "group", "") != "robot" or not getattr(record, "run_id", ""):
        return {}
    if record.breakdown:
        return record.breakdown
    try:
        from bench.store import read_breakdown

        return read_breakdown(record)
    except Exception:  # noqa: BLE001
        return {}


__all__ = ["Boot", "CellInterval", "DeltaCI", "NO_INTERVAL", "cell_interval", "default_breakdown", "default_items",
           "delta_interval", "protocol_seed_values", "robot_seed_values", "series_boot"]
