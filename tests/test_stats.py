"""Interval code pinned against hand-computed values: the percentile bootstrap re-done with an
explicit loop over the documented draw order (rows of rng.integers(0, n, (n_boot, n))), literal
numbers for fixed data, the exact (all-resamples) bootstrap of a tiny sample, the paired delta, the
Student-t interval against table values, and the mIoU-from-counts statistic."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from bench import stats

DATA = np.array([0.2, 0.9, 0.4, 0.7, 0.1, 0.8, 0.5, 0.3])


def _loop_bootstrap(values, statistic, n_boot, seed, alpha=0.05):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    reps = [statistic(values[row]) for row in idx]
    return np.percentile(reps, [100 * alpha / 2, 100 * (1 - alpha / 2)])


def test_bootstrap_matches_explicit_loop_and_is_seeded():
    est, lo, hi = stats.bootstrap_ci(DATA, n_boot=500, seed=7)
    ref_lo, ref_hi = _loop_bootstrap(DATA, np.mean, 500, 7)
    assert est == pytest.approx(DATA.mean())
    assert (lo, hi) == pytest.approx((ref_lo, ref_hi), abs=1e-12)
    assert stats.bootstrap_ci(DATA, n_boot=500, seed=7) == (est, lo, hi)  # deterministic
    assert stats.bootstrap_ci(DATA, n_boot=500, seed=8) != (est, lo, hi)


def test_bootstrap_literal_values_on_fixed_data():
    # numbers computed once by hand from the loop above (n_boot=20, seed=0) and written down
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 8, size=(20, 8))
    means = sorted(DATA[row].mean() for row in idx)
    # percentile with linear interpolation: position p*(n-1) in the sorted replicates
    pos_lo, pos_hi = 0.025 * 19, 0.975 * 19
    lo = means[0] + (means[1] - means[0]) * pos_lo
    hi = means[18] + (means[19] - means[18]) * (pos_hi - 18)
    assert stats.bootstrap_ci(DATA, n_boot=20, seed=0)[1:] == pytest.approx((lo, hi), abs=1e-12)
    # and written down, so a change of draw order or percentile rule fails loudly
    assert stats.bootstrap_ci(DATA, n_boot=20, seed=0) == pytest.approx((0.4875, 0.3178125, 0.6453125))
    d = stats.paired_bootstrap_delta(DATA, DATA ** 0.5, n_boot=20, seed=0)
    assert d[:3] == pytest.approx((0.178812093, 0.145420292, 0.219977993)) and d.significant


def test_bootstrap_approaches_the_exact_bootstrap_distribution():
    # all 4^4 resamples of a 4-item sample: the ideal bootstrap's 2.5/97.5 percentiles
    sample = np.array([0.0, 1.0, 2.0, 5.0])
    exact = sorted(np.mean(sample[list(p)]) for p in itertools.product(range(4), repeat=4))
    exact_lo, exact_hi = np.percentile(exact, [2.5, 97.5])
    _, lo, hi = stats.bootstrap_ci(sample, n_boot=20000, seed=1)
    assert lo == pytest.approx(exact_lo, abs=0.13) and hi == pytest.approx(exact_hi, abs=0.13)


def test_bootstrap_of_a_custom_statistic_resamples_rows_and_chunks_consistently(monkeypatch):
    counts = np.array([[[1, 2], [2, 4]], [[0, 3], [1, 3]], [[2, 1], [2, 2]], [[1, 0], [3, 1]]])
    est, lo, hi = stats.bootstrap_ci(counts, statistic=stats.miou_from_counts, n_boot=300, seed=3)
    ref_lo, ref_hi = _loop_bootstrap(counts, stats.miou_from_counts, 300, 3)
    assert (lo, hi) == pytest.approx((ref_lo, ref_hi), abs=1e-12)
    monkeypatch.setattr(stats, "_CHUNK_CELLS", 4 * 7)  # 7 resamples a chunk: same draws, same answer
    assert stats.bootstrap_ci(counts, statistic=stats.miou_from_counts, n_boot=300, seed=3) == (est, lo, hi)
    assert stats.bootstrap_ci(DATA, n_boot=300, seed=3) == pytest.approx(
        (DATA.mean(), *_loop_bootstrap(DATA, np.mean, 300, 3)), abs=1e-12)


def test_miou_from_counts_is_a_ratio_of_sums_with_absent_classes_left_out():
    # class 0: I=1+2=3, U=2+4=6 -> 0.5; class 1: I=0, U=0 -> absent; class 2: I=1, U=4 -> 0.25
    counts = np.array([[[1, 0, 1], [2, 0, 1]], [[2, 0, 0], [4, 0, 3]]])
    assert stats.miou_from_counts(counts) == pytest.approx((0.5 + 0.25) / 2)


def test_paired_delta_uses_the_same_items_and_flags_significance():
    rng = np.random.default_rng(0)
    base = (rng.random(400) < 0.6).astype(float)
    better = np.where(rng.random(400) < 0.3, 1.0, base)  # flips ~12% of items to correct
    d = stats.paired_bootstrap_delta(base, better, n_boot=1000, seed=0)
    assert d.delta == pytest.approx(better.mean() - base.mean())
    assert d.lo > 0 and d.significant
    # hand check: reps are mean(b[idx]) - mean(a[idx]) on shared rows
    idx = np.random.default_rng(0).integers(0, 400, size=(1000, 400))
    reps = better[idx].mean(axis=1) - base[idx].mean(axis=1)
    assert (d.lo, d.hi) == pytest.approx(tuple(np.percentile(reps, [2.5, 97.5])), abs=1e-12)
    # the paired interval is much tighter than two independent ones would suggest
    ind = stats.bootstrap_ci(better, n_boot=1000, seed=0)
    assert d.hi - d.lo < ind.hi - ind.lo
    noise = stats.paired_bootstrap_delta(base, np.roll(base, 1), n_boot=1000, seed=0)
    assert noise.lo < 0 < noise.hi and not noise.significant
    with pytest.raises(ValueError, match="aligned"):
        stats.paired_bootstrap_delta(base, base[:10])


def test_t_quantiles_and_seed_interval_match_tables():
    for df, t975 in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (29, 2.0452)):
        assert stats.t_quantile(0.975, df) == pytest.approx(t975, abs=1e-4)
    assert stats.t_cdf(0.0, 5) == pytest.approx(0.5)
    est, lo, hi = stats.seed_interval([0.6, 0.8, 0.7])
    half = 4.302653 * 0.1 / math.sqrt(3)  # s = 0.1
    assert (est, lo, hi) == pytest.approx((0.7, 0.7 - half, 0.7 + half), abs=1e-6)


def test_degenerate_inputs_give_nan_bounds_not_errors():
    assert math.isnan(stats.bootstrap_ci([0.5])[1]) and stats.bootstrap_ci([0.5])[0] == 0.5
    assert math.isnan(stats.seed_interval([0.5]).lo)
    assert all(math.isnan(v) for v in stats.bootstrap_ci([]))
    same = stats.bootstrap_ci([1.0] * 5, n_boot=50)
    assert same == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        stats.bootstrap_ci(DATA, alpha=1.5)


# The Met: one top-1 prediction per query, label -1 = distractor (never correct). GAP ranks every
# query by confidence, so it is not a mean over queries: the bootstrap resamples query rows and
# recomputes the ranking on each resample.
MET_PRED = np.array([3, 1, 4, 1, 5, 9, 2, 6])
MET_CONF = np.array([0.9, 0.8, 0.75, 0.7, 0.6, 0.5, 0.4, 0.3])
MET_TRUE = np.array([3, 2, 4, -1, 5, 9, 7, 6])


def _gap_by_hand(rows):
    """GAP with a plain loop: walk the predictions by decreasing confidence (ties: first come first)."""
    order = sorted(range(len(rows)), key=lambda i: -rows[i][1])
    m = sum(1 for r in rows if r[2] != -1)
    correct, total = 0, 0.0
    for rank, i in enumerate(order, start=1):
        if rows[i][0] == rows[i][2] and rows[i][2] != -1:
            correct += 1
            total += correct / rank
    return total / m


def test_gap_is_recomputed_on_every_resample_of_query_rows():
    from bench.metrics.retrieval import gap_items

    rows = gap_items(MET_PRED, MET_CONF, MET_TRUE)
    # by hand: correct at ranks 1, 3, 5, 6, 8 (rank 2 wrong, 4 a distractor, 7 wrong); M = 7 labelled
    gap = (1 / 1 + 2 / 3 + 3 / 5 + 4 / 6 + 5 / 8) / 7
    assert _gap_by_hand(rows) == pytest.approx(gap)
    fn = stats.item_statistic("gap")
    assert fn(rows) == pytest.approx(gap)
    # without distractors: the distractor row leaves the ranking (ranks 1..7: correct at 1, 3, 4, 5, 7)
    assert stats.item_statistic("gap_nodistractors")(rows) == pytest.approx((1 + 2 / 3 + 3 / 4 + 4 / 5 + 5 / 7) / 7)
    # the seeded bootstrap equals the explicit loop over the documented draws, with GAP by hand
    est, lo, hi = stats.bootstrap_ci(rows, fn, n_boot=400, seed=3)
    ref_lo, ref_hi = _loop_bootstrap(rows, _gap_by_hand, 400, 3)
    assert est == pytest.approx(gap) and (lo, hi) == pytest.approx((ref_lo, ref_hi), abs=1e-12)
    assert lo < gap < hi
    # written down (n_boot=20, seed=0), so a change of draw order, tie rule or percentile rule fails
    assert stats.bootstrap_ci(rows, fn, n_boot=20, seed=0) == pytest.approx(
        tuple(np.r_[gap, _loop_bootstrap(rows, _gap_by_hand, 20, 0)]), abs=1e-12)
    assert stats.bootstrap_ci(rows, fn, n_boot=20, seed=0) == pytest.approx(GAP_LITERAL, abs=1e-9)


GAP_LITERAL = (0.5083333333333333, 0.283125, 0.9705144557823128)  # the loop above, printed once


def test_pooled_ratio_and_mean_per_class_statistics_by_hand():
    # aAcc: (2 + 0 + 1 + 3) correct of (4 + 0 + 2 + 4) labelled pixels over two images and two classes
    acc = np.array([[[2, 0], [4, 0]], [[1, 3], [2, 4]]])
    assert stats.item_statistic("ratio")(acc) == pytest.approx(6 / 10)
    assert stats.item_statistic("miou")(acc) == pytest.approx((3 / 6 + 3 / 4) / 2)  # mAcc: per class, then mean
    # mean per-class recall from (hit, label) rows: class 0: 1/2, class 2: 2/3 (class 1 absent)
    rows = np.array([[1, 0], [0, 0], [1, 2], [1, 2], [0, 2]], dtype=float)
    assert stats.item_statistic("mean_per_class")(rows) == pytest.approx((1 / 2 + 2 / 3) / 2)
    est, lo, hi = stats.bootstrap_ci(rows, stats.mean_per_class, n_boot=200, seed=2)
    assert (lo, hi) == pytest.approx(tuple(_loop_bootstrap(rows, stats.mean_per_class, 200, 2)), abs=1e-12)
