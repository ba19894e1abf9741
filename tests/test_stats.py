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
