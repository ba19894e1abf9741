"""The task contract: metadata validation, typed configs with overrides, lazy feature shards, the
rollout shape (learns, resumes), aggregates from stored results, and tasks in their own process."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from bench.config import ConfigError, config_hash, flatten, parse_sets, resolve
from bench.metrics import Metric
from bench.task import Need, TaskMeta, TaskResult


@pytest.fixture
def toys():
    import tasks

    tasks.TASKS.names()  # discover the built-in tasks first
    import tests.toy_tasks as toy_tasks

    yield toy_tasks
    for name in toy_tasks.NAMES:
        tasks.TASKS._entries.pop(name, None)
        tasks._BOUND.pop(name, None)
    sys.modules.pop("tests.toy_tasks", None)


def test_meta_validation():
    m = (Metric("a", True), Metric("ref", True, role="reference"))
    with pytest.raises(ValueError, match="group"):
        TaskMeta("t", "nope", "", m, "a")
    with pytest.raises(ValueError, match="headline"):
        TaskMeta("t", "depth", "", m, "zzz")
    with pytest.raises(ValueError, match="score"):
        TaskMeta("t", "depth", "", m, "ref")
    with pytest.raises(ValueError, match="duplicate"):
        TaskMeta("t", "depth", "", m + (Metric("a", False),), "a")
    meta = TaskMeta("t", "depth", "", m, "a", needs=Need.ONLINE_ENCODER | Need.OWN_PROCESS)
    assert meta.needs.names() == ["online_encoder", "own_process"]
    with pytest.raises(ValueError, match="undeclared"):
        TaskResult({"a": 1.0, "b": 2.0}).validate(meta)
    with pytest.raises(ValueError, match="not finite"):
        TaskResult({"a": float("nan")}).validate(meta)
    TaskResult({"a": 1.0}).validate(meta)


def test_metric_selection_rule():
    lower = Metric("rmse", False)
    assert lower.best_index([0.5, float("nan"), 0.2, 0.2]) == 2
    assert Metric("top1", True).best_index([float("nan"), 3.0, 7.0]) == 2
    assert lower.is_better(0.1, float("nan")) and not lower.is_better(float("nan"), 0.1)


def test_task_configs_resolve_with_overrides():
    from tasks import get_task

    task = get_task("synth-cls-linear")
    cfg = resolve(task.default_config(), parse_sets(["synth-cls-linear.train.epochs=3",
                                                     "synth-cls-linear.mode=augmented"])["synth-cls-linear"])
    assert cfg.train.epochs == 3 and cfg.mode == "augmented"
    assert flatten(cfg)["train.epochs"] == 3 and config_hash(cfg) != config_hash(task.default_config())
    with pytest.raises(ConfigError, match="did you mean"):
        resolve(task.default_config(), {"train.epoch": 3})
    with pytest.raises(ConfigError):
        resolve(task.default_config(), {"train.epochs": "many"})
    with pytest.raises(ConfigError, match="cached"):
        resolve(task.default_config(), {"mode": "sideways"})
    with pytest.raises(ConfigError, match="TASK.key=value"):
        parse_sets(["iterations=3"])


def test_feature_store_reads_rows_lazily(tmp_path, counting_encoder):
    from bench.features import Extractor, FeatureCache, FeatureSpec

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return torch.full((3, 32, 32), i / 10.0), i

    cache = FeatureCache(tmp_path / "cache", shard_size=4)
    ex = Extractor(counting_encoder, device=torch.device("cpu"), batch_size=3, num_workers=0)
    store = cache.get_or_extract(ex, Images(), identity={"n": 10}, transform="none",
                                 spec=FeatureSpec(("cls", "patches"), 2), progress=False)
    assert set(store) == {"cls", "patches"} and store.n_rows == 10 and len(store.shards) == 3
    rows = store.rows("patches", [9, 0, 5])
    assert not store._full  # nothing loaded whole
    assert torch.equal(rows, store["patches"][[9, 0, 5]]) and store["cls"].shape == (10, 2, 8)


def test_rollout_shape_learns_and_resumes(toys, tmp_path, counting_encoder):
    from bench.context import EvalContext
    from bench.features import FeatureCache
    from tasks import get_task

    task = get_task("toy-reach")
    ctx = EvalContext(counting_encoder, torch.device("cpu"), 0, FeatureCache(tmp_path / "c"), batch_size=16,
                      state_root=tmp_path / "state")
    result = task.run(ctx, task.default_config())
    result.validate(task.meta)
    assert set(result.breakdown) == {"env:left", "env:right", "env:left/seed:1", "env:left/seed:2",
                                     "env:right/seed:1", "env:right/seed:2"}
    assert result.metrics["success"] >= 75.0, result.breakdown
    assert "success_std" in result.metrics
    blind = np.zeros(counting_encoder.embed_dim + 1)  # a policy that never moves: floor of the task
    floor = np.mean([task.rollout(ctx, task.default_config(), env, blind, 1)["success"] for env in ("left", "right")])
    assert result.metrics["success"] > floor + 40
    fitted = toys.Reach.trained
    again = task.run(ctx, task.default_config())  # every (env, seed) is finished: nothing is refitted
    assert toys.Reach.trained == fitted and again.metrics == result.metrics


def test_runner_records_aggregates_and_own_process(toys, tmp_path, monkeypatch):
    from bench.store import read_records
    from runners.benchmark import RunConfig, run_benchmark

    monkeypatch.setenv("TOY_PARENT_PID", str(os.getpid()))
    cfg = RunConfig(encoders=["vit-tiny"], tasks=["toy-suite", "toy-own-process"], progress=False,
                    task_config={"toy-width": {"scale": 2.0}})
    records = run_benchmark(cfg, out=open(os.devnull, "w"))
    by_task = {r.task: r for r in records}
    assert by_task["toy-width"].metrics["value"].value == 2 * 192
    assert by_task["toy-suite"].kind == "aggregate"
    assert by_task["toy-suite"].metrics["value"].value == pytest.approx((2 * 192 + 12) / 2)
    assert by_task["toy-suite"].breakdown == {"member:toy-width": {"value": 384.0}, "member:toy-depth": {"value": 12.0}}
    assert by_task["toy-own-process"].metrics["in_child"].value == 1.0
    assert int(by_task["toy-own-process"].params["child_pid"]) != os.getpid()
    stored = {r.task: r for r in read_records()}
    assert stored["toy-suite"].metrics["value"].value == pytest.approx(198.0)
    from bench.store import read_breakdown

    assert read_breakdown(stored["toy-suite"]) == {"member:toy-width": {"value": 384.0},
                                                    "member:toy-depth": {"value": 12.0}}
    assert read_breakdown(stored["toy-own-process"]) == {}
    assert stored["toy-width"].params["protocol.scale"] == "2.0"


def test_dry_run_plans_without_work(toys, tmp_path, capsys):
    from runners.benchmark import RunConfig, run_benchmark

    out = tmp_path / "plan.txt"
    with open(out, "w") as f:
        assert run_benchmark(RunConfig(encoders=["vit-tiny", "vit-tiny+sb"], tasks=["all"], progress=False),
                             out=f, dry_run=True) == []
    text = out.read_text()
    assert "train" in text and "vit-tiny+sb" in text and "synth-depth-linear" in text and "generate" in text
    home = os.environ["BENCH_HOME"]
    assert not os.path.exists(os.path.join(home, "checkpoints")) and not os.path.exists(os.path.join(home, "mlflow.db"))
    assert not os.path.exists(os.path.join(home, "data"))
