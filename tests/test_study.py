"""bench study mini: the config is complete, and the report's deltas, intervals and verdicts are right."""
from __future__ import annotations

import numpy as np
import pytest

from bench.task import ItemScores


def test_mini_config_names_real_encoders_and_tasks():
    from bench.encoders import check_encoder_name
    from bench.study.runner import arm_name, load_config
    from tasks import TASKS

    cfg = load_config()
    assert len(cfg["seeds"]) >= 3
    for arm in ["base", *cfg["arms"]]:
        assert check_encoder_name(arm_name(cfg, arm)) == arm_name(cfg, arm)
    for task in cfg["tasks"]:
        TASKS.entry(task)
    assert {a for a, _, _ in cfg["comparisons"]} | {b for _, b, _ in cfg["comparisons"]} <= {"base", *cfg["arms"]}


def _cfg():
    return {"name": "t", "base": "vit-tiny-synth", "seeds": [0, 1, 2], "sb_preset": "tiny", "synth_preset": "tiny",
            "tasks": ["synth-cls-knn"], "arms": {"sb": "", "full": "full"}, "forgetting_task": "synth-cls-knn",
            "comparisons": [["base", "sb", "sb helps"], ["full", "sb", "dual beats full"]], "not_run": {"x": "y"}}


def _fake(n=300):
    rng = np.random.default_rng(0)
    out = {}
    for s in (0, 1, 2):
        base = (rng.random(n) < 0.30).astype(float)
        better = np.maximum(base, (rng.random(n) < 0.25).astype(float))  # a superset of base's hits: +SB helps
        for arm, hits in (("base", base), ("sb", better), ("full", base.copy())):
            out[(arm, s, "synth-cls-knn")] = {"value": 100 * hits.mean(), "higher": True, "metric": "top1",
                                              "items": ItemScores(hits, "mean", 100.0)}
    return out


def test_deltas_intervals_and_verdicts(tmp_path):
    from bench.stats import paired_bootstrap_delta
    from bench.study.report import comparisons, write_report

    cfg, res = _cfg(), _fake()
    rows = {(r["a"], r["b"]): r for r in comparisons(cfg, res)}
    helps, tie = rows[("base", "sb")], rows[("full", "sb")]
    a = np.concatenate([res[("base", s, "synth-cls-knn")]["items"].values for s in (0, 1, 2)])
    b = np.concatenate([res[("sb", s, "synth-cls-knn")]["items"].values for s in (0, 1, 2)])
    want = paired_bootstrap_delta(a, b, statistic=lambda x: 100 * np.mean(x))
    assert helps["delta"] == pytest.approx(100 * (b.mean() - a.mean()))
    assert (helps["lo"], helps["hi"]) == pytest.approx((want.lo, want.hi))
    assert helps["held"] and helps["lo"] > 0
    assert tie["delta"] > 0 and tie["held"]  # full == base here, so sb beats it too
    doc = write_report(cfg, res, tmp_path / "mini-study.md")
    text = doc.read_text()
    assert "sb helps: HELD on synth-cls-knn" in text and "95% CI" in text and "+- " in text
    assert (tmp_path / "mini-study" / "arms.png").is_file()


def test_a_worse_arm_is_reported_reversed(tmp_path):
    from bench.study.report import comparisons

    cfg, res = _cfg(), _fake()
    for s in (0, 1, 2):  # swap: sb now loses to base
        res[("sb", s, "synth-cls-knn")], res[("base", s, "synth-cls-knn")] = \
            res[("base", s, "synth-cls-knn")], res[("sb", s, "synth-cls-knn")]
    row = next(r for r in comparisons(cfg, res) if r["a"] == "base")
    assert row["reversed"] and not row["held"] and row["hi"] < 0
