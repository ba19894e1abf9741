"""Per-item scores of the 3D tasks give back their corpus metrics (so intervals bootstrap the real metric)."""
from __future__ import annotations

import numpy as np
import pytest


def test_bleu1_rows_reproduce_corpus_bleu1():
    from bench.metrics.bleu import bleu, bleu1_rows
    from bench.stats import bleu1_of_rows

    refs = {1: ["a red chair", "the red chair"], 2: ["two"], 3: ["on the left of the table"], 4: ["brown wooden table"]}
    hyps = {1: "red chair", 2: "two", 3: "left of the bed", 4: "table"}  # short hypotheses: brevity penalty
    rows = bleu1_rows(refs, hyps, "clone")
    assert rows.tolist() == [[2, 2, 3], [1, 1, 1], [3, 4, 6], [1, 1, 3]]  # matches, length, closest ref length
    assert bleu1_of_rows(rows) == pytest.approx(bleu(refs, hyps)[0], rel=1e-12)
    # by hand: 7 of 8 unigrams match, 8 vs 13 reference tokens
    assert bleu1_of_rows(rows) == pytest.approx(7 / 8 * np.exp(1 - 13 / 8), rel=1e-9)


def test_bleu1_rows_follow_pycocoevalcap_when_it_scored():
    from bench.metrics.bleu import bleu1_rows, coco_available, coco_bleu
    from bench.stats import bleu1_of_rows

    why = coco_available()
    if why:
        pytest.skip(why)
    refs = {"a": ["It's a chair.", "a chair"], "b": ["1.5 meters", "about 1.5 m"], "c": ["Yes"]}
    hyps = {"a": "chair", "b": "1.5 meters away", "c": "no"}
    assert bleu1_of_rows(bleu1_rows(refs, hyps, "pycocoevalcap")) == pytest.approx(coco_bleu(refs, hyps)[0], rel=1e-9)


def test_miou_over_all_classes_counts_absent_ones_as_zero():
    from bench.stats import miou_all_classes, miou_from_counts

    counts = np.array([[[2, 0, 0], [4, 1, 0]], [[1, 1, 0], [2, 1, 0]]], dtype=float)  # 2 scenes, 3 classes
    assert miou_all_classes(counts) == pytest.approx((3 / 6 + 1 / 2 + 0) / 3)
    assert miou_from_counts(counts) == pytest.approx((3 / 6 + 1 / 2) / 2)  # mmseg's nanmean leaves class 3 out
