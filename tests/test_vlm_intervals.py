"""Intervals of the VLM numbers that are not means over questions, pinned against a bootstrap done by
hand (seeded, the documented draw order: rows of rng.integers(0, n, (n_boot, n))) on fixed answers:

* MME `score` (sum over subtasks of acc + acc+): images are resampled, an image's two questions stay
  together, and acc / acc+ are recomputed per subtask on every resample;
* SpatialRGPT-Bench's `mean` headline ((qualitative + quantitative) / 2): both micro-averages are
  recomputed on every resample;

and `bench table` shows them (and a paired +SB delta) from the per-item scores stored with the runs.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest

from bench import stats
from bench.task import TaskResult
from bench.vlm.benchmarks import score
from bench.vlm.readers import VQAItem
from tasks.vlm.evaluate import VLMEvalConfig, headline_items

N_BOOT = 2000
# (subtask, images): three perception subtasks and one cognition subtask (not in the score)
MME_SUBTASKS = (("existence", 14), ("count", 12), ("color", 16), ("code_reasoning", 10))


def _mme(seed: int, p_right: float):
    """MME items and answers; per image, (subtask, is question 1 right, is question 2 right)."""
    rng = np.random.default_rng(seed)
    items, answers, truth = [], [], []
    for sub, n in MME_SUBTASKS:
        for k in range(n):
            img = f"{sub}/{k:03d}"
            right = rng.random(2) < p_right
            truth.append((sub, img, bool(right[0]), bool(right[1])))
            for q, (gt, ok) in enumerate(zip(("Yes", "No"), right)):
                items.append(VQAItem(f"{img}/{q}", "Is it? Please answer yes or no.", gt, category=sub,
                                     extra={"image_id": img}))
                answers.append(gt if ok else ("No" if gt == "Yes" else "Yes"))
    return items, answers, truth


def _mme_score_by_hand(images) -> float:
    """Official MME perception score of (subtask, image, right1, right2) rows: per subtask acc (over
    questions) + acc+ (images with both right), summed over the perception subtasks."""
    total = 0.0
    for sub in ("existence", "count", "color"):
        mine = [(a, b) for s, _, a, b in images if s == sub]
        assert mine, "every resample of this data holds every subtask"
        total += 100.0 * sum(a + b for a, b in mine) / (2 * len(mine)) + 100.0 * sum(a and b for a, b in mine) / len(mine)
    return total


def _hand_bootstrap(units, statistic, seed=0):
    idx = np.random.default_rng(seed).integers(0, len(units), size=(N_BOOT, len(units)))
    reps = [statistic([units[i] for i in row]) for row in idx]
    return tuple(np.percentile(reps, [2.5, 97.5]))


def _scored(kind, items, answers, cfg=VLMEvalConfig()):
    from tasks import task_meta

    metrics, breakdown, rows = score(kind, items, answers, headline=cfg.headline)
    result = TaskResult(metrics, breakdown, headline_items(kind, cfg, items, rows, metrics))
    result.validate(task_meta("mme" if kind == "mme" else "spatialrgpt-bench"))  # items reproduce their metrics
    return result


def test_mme_score_interval_resamples_images_and_recomputes_acc_plus():
    items, answers, truth = _mme(0, 0.7)
    result = _scored("mme", items, answers)
    got = result.items["score"]
    assert got.value() == pytest.approx(result.metrics["score"]) and got.values.shape == (42, 2)  # one row per perception image
    assert result.metrics["score"] == pytest.approx(_mme_score_by_hand(truth))
    assert set(result.items) == {"score", "perception", "cognition"}  # no unofficial subtask here
    ci = stats.bootstrap_ci(got.values, stats.item_statistic(got.statistic), n_boot=N_BOOT)
    images = sorted((t for t in truth if t[0] != "code_reasoning"), key=lambda t: (t[0], t[1]))
    lo, hi = _hand_bootstrap(images, _mme_score_by_hand)
    assert (got.scale * ci.lo, got.scale * ci.hi) == pytest.approx((lo, hi), abs=1e-9)
    assert lo < result.metrics["score"] < hi
    # resampling questions instead would break acc+ (an image's pair split): not what is stored
    assert got.values[:, 0].max() <= 2.0 and set(np.unique(got.values[:, 0])) <= {0.0, 0.5, 2.0}
    cognition = result.items["cognition"]  # one subtask: 100 x mean(acc + acc+ per image)
    assert cognition.scale == 100.0 and cognition.value() == pytest.approx(result.metrics["cognition"])


def _spatial(seed: int):
    rng = np.random.default_rng(seed)
    items, answers, truth = [], [], []
    for k in range(40):  # 24 quantitative (distances), 16 qualitative (predicates): unequal groups
        quant = k < 24
        ok = bool(rng.random() < (0.4 if quant else 0.8))
        if quant:
            items.append(VQAItem(str(k), "How far?", "They are 2.0 meters apart.", category="distance_data"))
            answers.append("2.1 m" if ok else "5 m")
        else:
            items.append(VQAItem(str(k), "Taller?", "Yes, Region [0] is taller than Region [1].",
                                 category="tall_predicate"))
            answers.append("Yes." if ok else "No.")
        truth.append((quant, ok))
    return items, answers, truth


def _spatial_mean_by_hand(units) -> float:
    quan = [ok for q, ok in units if q]
    qual = [ok for q, ok in units if not q]
    assert quan and qual
    return (100.0 * sum(quan) / len(quan) + 100.0 * sum(qual) / len(qual)) / 2


def test_spatialrgpt_mean_headline_recomputes_both_micro_averages():
    items, answers, truth = _spatial(1)
    result = _scored("spatialrgpt", items, answers, VLMEvalConfig(headline="mean"))
    acc = result.items["accuracy"]
    assert result.metrics["accuracy"] == pytest.approx(_spatial_mean_by_hand(truth))
    assert acc.value() == pytest.approx(result.metrics["accuracy"])
    assert result.metrics["accuracy"] != pytest.approx(100.0 * np.mean([ok for _, ok in truth]))  # not a plain mean
    ci = stats.bootstrap_ci(acc.values, stats.item_statistic(acc.statistic), n_boot=N_BOOT)
    lo, hi = _hand_bootstrap(truth, _spatial_mean_by_hand)
    assert (100.0 * ci.lo, 100.0 * ci.hi) == pytest.approx((lo, hi), abs=1e-9)
    for name, quant in (("quantitative", True), ("qualitative", False)):  # the sub-scores: means over their items
        sub = result.items[name]
        assert sub.statistic == "mean" and list(sub.values) == [float(ok) for q, ok in truth if q == quant]
    # the default headline is the quantitative micro-average, the same items as its sub-score
    default = _scored("spatialrgpt", items, answers)
    assert list(default.items["accuracy"].values) == list(default.items["quantitative"].values)


def _log_vlm(client, exp, parent, encoder, task, result):
    from bench.store import ITEMS_FILE, write_items
    from tasks import task_meta
    from tests.test_tables import log_record, make_record

    rec = make_record(encoder, task, 0, result.metrics, catalog={task: task_meta(task)})
    rid = log_record(client, exp, parent, rec)
    with tempfile.TemporaryDirectory() as tmp:
        write_items(Path(tmp) / ITEMS_FILE, result.items)
        client.log_artifact(rid, str(Path(tmp) / ITEMS_FILE))


def test_bench_table_shows_the_vlm_intervals_and_the_paired_delta(capsys):
    from mlflow.tracking import MlflowClient

    from bench.cli import main
    from bench.paths import tracking_uri
    from tests.test_tables import _experiment

    client = MlflowClient(tracking_uri())
    exp = _experiment(client)
    parent = client.create_run(exp, run_name="fixture").info.run_id
    items, base_answers, base_truth = _mme(0, 0.55)
    better = list(base_answers)
    for i in range(0, len(items), 4):  # +sb: also right on every fourth question
        better[i] = items[i].answer
    base, boosted = _scored("mme", items, base_answers), _scored("mme", items, better)
    _log_vlm(client, exp, parent, "dinov3", "mme", base)
    _log_vlm(client, exp, parent, "dinov3+sb", "mme", boosted)
    sp_items, sp_answers, _ = _spatial(1)
    spatial = _scored("spatialrgpt", sp_items, sp_answers, VLMEvalConfig(headline="mean"))
    _log_vlm(client, exp, parent, "dinov3", "spatialrgpt-bench", spatial)
    client.set_terminated(parent)

    assert main(["table", "--format", "text"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.lstrip().startswith("dinov3 ") or
               line.split("|")[0].strip() == "dinov3")
    b = base.items["score"]
    want = stats.bootstrap_ci(b.values, stats.item_statistic(b.statistic))
    cell = f"{base.metrics['score']:.1f} [{b.scale * want.lo:.1f}, {b.scale * want.hi:.1f}]"
    assert cell in row, (cell, out)
    s = spatial.items["accuracy"]
    sw = stats.bootstrap_ci(s.values, stats.item_statistic(s.statistic))
    assert f"{spatial.metrics['accuracy']:.1f} [{100 * sw.lo:.1f}, {100 * sw.hi:.1f}]" in row, out
    delta_line = next(line for line in out.splitlines() if "Δ" in line)
    d = stats.paired_bootstrap_delta(b.values, boosted.items["score"].values, stats.item_statistic(b.statistic))
    assert d.significant and d.lo > 0
    assert re.search(rf"\[{b.scale * d.lo:.1f}, {b.scale * d.hi:.1f}\]", delta_line), (d, out)
