"""95% intervals for every reported number (numpy only, no torch, cheap to import).

Three estimators, chosen by what the run's uncertainty comes from:

* `bootstrap_ci` -- percentile bootstrap over test items (kNN / linear correctness per test image,
  AP per query, a depth error per image, per-image intersection / union counts for mIoU). Items are
  resampled with replacement `n_boot` times and `statistic` is recomputed on each resample; the
  interval is the (alpha/2, 1 - alpha/2) percentiles of those replicates (numpy's default linear
  interpolation). The statistic sees rows of `values` (axis 0 = items), so ratio metrics such as
  mIoU (sum of intersections over sum of unions per class, then a class mean) are bootstrapped
  properly rather than averaging per-image IoUs.
* `paired_bootstrap_delta` -- the same resample indices applied to two aligned item arrays (base and
  +SB scored on the same test items), giving an interval on ``statistic(b) - statistic(a)``; the
  delta is *significant* when the interval excludes 0.
* `seed_interval` -- Student-t interval over independent seeds (robot protocol seeds): mean +-
  t_{1-alpha/2, n-1} * s / sqrt(n). With one seed there is no interval (NaN bounds).

Everything is deterministic for a given ``seed``: the same stored items always give the same
interval, so a rebuilt leaderboard does not flicker.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from bench.metrics.retrieval import gap_of_items, gap_of_items_nodistractors

DEFAULT_N_BOOT = 2000
DEFAULT_SEED = 0
_CHUNK_CELLS = 4_000_000  # resample indices drawn per chunk (bounded memory for 100k-item tests)

METHOD = ("95% intervals: percentile bootstrap over test items (2000 resamples, seed 0) for "
          "accuracy, per-query AP, per-image depth errors and per-image intersection/union counts "
          "(mIoU), recomputing corpus-level metrics (the Met's GAP ranks all queries) on every "
          "resample; Student-t over protocol seeds for robot tasks. +SB deltas: paired bootstrap on "
          "the same test items; a delta whose interval covers 0 is marked not significant.")


class Interval(NamedTuple):
    """A point estimate and its (lo, hi) interval; NaN bounds mean 'no interval computable'."""

    estimate: float
    lo: float
    hi: float


class DeltaInterval(NamedTuple):
    """statistic(b) - statistic(a) with its paired interval; significant = interval excludes 0."""

    delta: float
    lo: float
    hi: float
    significant: bool


def _as_items(values) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        raise ValueError("bootstrap needs an array of per-item values (axis 0 = items), got a scalar")
    return arr


def _replicates(arrays: tuple[np.ndarray, ...], statistic: Callable, n_boot: int,
                seed: int) -> list[np.ndarray]:
    """statistic of each array on the same n_boot resamples (one index draw serves all arrays)."""
    n = len(arrays[0])
    rng = np.random.default_rng(seed)
    out: list[list[float]] = [[] for _ in arrays]
    vector_mean = statistic is np.mean and all(a.ndim == 1 for a in arrays)
    chunk = max(1, min(n_boot, _CHUNK_CELLS // max(n, 1)))
    done = 0
    while done < n_boot:
        size = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(size, n))  # documented draw order: rows are resamples
        for k, arr in enumerate(arrays):
            if vector_mean:
                out[k].extend(arr[idx].mean(axis=1).tolist())
            else:
                out[k].extend(float(statistic(arr[row])) for row in idx)
        done += size
    return [np.asarray(o, dtype=float) for o in out]


def _percentiles(reps: np.ndarray, alpha: float) -> tuple[float, float]:
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(reps, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def _check(alpha: float, n_boot: int) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")


def bootstrap_ci(values, statistic: Callable = np.mean, n_boot: int = DEFAULT_N_BOOT,
                 alpha: float = 0.05, seed: int = DEFAULT_SEED) -> Interval:
    """Percentile bootstrap interval of ``statistic`` over items (rows of ``values``).

    ``statistic`` takes an array shaped like ``values`` (rows resampled) and returns a number.
    Fewer than 2 items: the estimate with NaN bounds (one item says nothing about spread).
    """
    _check(alpha, n_boot)
    arr = _as_items(values)
    if len(arr) == 0:
        return Interval(math.nan, math.nan, math.nan)
    estimate = float(statistic(arr))
    if len(arr) < 2:
        return Interval(estimate, math.nan, math.nan)
    (reps,) = _replicates((arr,), statistic, n_boot, seed)
    lo, hi = _percentiles(reps, alpha)
    return Interval(estimate, lo, hi)


def paired_bootstrap_delta(a, b, statistic: Callable = np.mean, n_boot: int = DEFAULT_N_BOOT,
                           alpha: float = 0.05, seed: int = DEFAULT_SEED) -> DeltaInterval:
    """Paired percentile bootstrap of ``statistic(b) - statistic(a)`` (b = +SB, a = base).

    ``a`` and ``b`` must be aligned per item (row i of both is the same test item); each resample
    picks the same rows from both, so item difficulty cancels and the interval is the delta's own.
    """
    _check(alpha, n_boot)
    arr_a, arr_b = _as_items(a), _as_items(b)
    if arr_a.shape[0] != arr_b.shape[0]:
        raise ValueError(f"paired bootstrap needs aligned items: {arr_a.shape[0]} vs {arr_b.shape[0]}")
    if len(arr_a) == 0:
        return DeltaInterval(math.nan, math.nan, math.nan, False)
    delta = float(statistic(arr_b)) - float(statistic(arr_a))
    if len(arr_a) < 2:
        return DeltaInterval(delta, math.nan, math.nan, False)
    reps_a, reps_b = _replicates((arr_a, arr_b), statistic, n_boot, seed)
    lo, hi = _percentiles(reps_b - reps_a, alpha)
    significant = bool(np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0))
    return DeltaInterval(delta, lo, hi, significant)


# --- Student t quantile without scipy (regularized incomplete beta, Numerical Recipes 6.4) ---

def _betacf(a: float, b: float, x: float) -> float:
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 3e-16:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Inverse of `t_cdf` by bisection (monotone, 1e-12 tolerance)."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def seed_interval(values, alpha: float = 0.05) -> Interval:
    """Student-t interval of the mean over independent seeds (NaN bounds with fewer than 2)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    arr = np.asarray(values, dtype=float).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    mean = float(arr.mean())
    if arr.size < 2:
        return Interval(mean, math.nan, math.nan)
    half = t_quantile(1 - alpha / 2, arr.size - 1) * float(arr.std(ddof=1)) / math.sqrt(arr.size)
    return Interval(mean, mean - half, mean + half)


def miou_from_counts(counts) -> float:
    """mIoU of stacked per-image counts shaped (images, 2, classes): [:, 0] intersection, [:, 1]
    union. Classes with no union over the sample are left out (mmseg's nanmean)."""
    arr = np.asarray(counts, dtype=float)
    inter, union = arr[:, 0].sum(axis=0), arr[:, 1].sum(axis=0)
    present = union > 0
    if not present.any():
        return math.nan
    return float((inter[present] / union[present]).mean())


def miou_all_classes(counts) -> float:
    """Like `miou_from_counts`, but every class counts and one with no union scores 0 (Lexicon3D's
    SemsegMeter, which averages over all 20 ScanNet classes)."""
    arr = np.asarray(counts, dtype=float)
    inter, union = arr[:, 0].sum(axis=0), arr[:, 1].sum(axis=0)
    return float((inter / np.maximum(union, 1e-8)).mean())


def bleu1_of_rows(rows) -> float:
    """Corpus BLEU-1 as pycocoevalcap's BleuScorer (option 'closest') from per-item rows (clipped unigram
    matches, hypothesis length, closest reference length): sums first, then precision x brevity penalty."""
    arr = np.asarray(rows, dtype=float)
    match, hyp, ref = arr[:, 0].sum(), arr[:, 1].sum(), arr[:, 2].sum()
    tiny, small = 1e-15, 1e-9
    ratio = (hyp + tiny) / (ref + small)
    return float((match + tiny) / (hyp + small) * (math.exp(1 - 1 / ratio) if ratio < 1 else 1.0))


def ratio_of_sums(counts) -> float:
    """sum of numerators / sum of denominators over every item and class of per-item counts shaped
    (items, 2, ...): mmseg's aAcc from per-image (correct pixels, labelled pixels) per class."""
    arr = np.asarray(counts, dtype=float)
    den = arr[:, 1].sum()
    return float(arr[:, 0].sum() / den) if den > 0 else math.nan


def mean_per_class(rows) -> float:
    """Mean over the classes present of each class's recall, from per-item (hit, label) rows."""
    arr = np.asarray(rows, dtype=float)
    labels = arr[:, 1].astype(np.int64)
    count = np.bincount(labels)
    correct = np.bincount(labels, weights=arr[:, 0], minlength=count.size)
    present = count > 0
    return float((correct[present] / count[present]).mean())


def _nanmean(values) -> float:
    arr = np.asarray(values, dtype=float)
    finite = arr[np.isfinite(arr)]
    return float(finite.mean()) if finite.size else math.nan


# How per-item scores become their metric (`bench.task.ItemScores.statistic`): each takes the item
# rows (a resample, in a bootstrap) and returns the metric before its scale.
# "gap" / "gap_nodistractors": the Met's GAP ranks every query together (not a mean over queries): its
# items are (prediction, confidence, label) rows and each resample recomputes the ranking.
# "miou" is any per-class ratio of sums averaged over classes: mIoU from (intersection, union) and
# mAcc from (correct, labelled) per-image counts; "ratio" pools all classes (aAcc).
STATISTICS: dict[str, Callable] = {"mean": np.mean, "nanmean": _nanmean, "miou": miou_from_counts,
                                   "ratio": ratio_of_sums, "mean_per_class": mean_per_class,
                                   "miou_all": miou_all_classes, "bleu1": bleu1_of_rows,
                                   "gap": gap_of_items, "gap_nodistractors": gap_of_items_nodistractors}


def item_statistic(name: str) -> Callable:
    try:
        return STATISTICS[name]
    except KeyError:
        raise ValueError(f"unknown item statistic {name!r}; known: {sorted(STATISTICS)}") from None
