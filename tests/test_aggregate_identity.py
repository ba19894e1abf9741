"""A suite aggregate's identity is its members' (runners/aggregates.py): the mean of members rerun
under another protocol variant is a new result beside the old one, never "done already"; a rerun
over the same member runs reuses it (one record per identity). Test-only tasks stand in for the
robot suites: the same `protocol` knob (small | paper), no simulator."""
from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from bench.metrics import Metric
from bench.task import AggregateTask, Need, Task, TaskMeta, TaskResult

NAMES = ("idtoy-a", "idtoy-b", "idtoy-suite")
SCORE = (Metric("success", True, "a toy success rate", "%"),)


@dataclass(frozen=True)
class VariantConfig:
    protocol: str = "small"  # the robot tasks' knob: "paper" runs more episodes, here: a higher score


class Variant(Task):
    Config = VariantConfig

    def run(self, ctx, cfg: VariantConfig) -> TaskResult:
        base = float(self.options["base"])
        return TaskResult({"success": base * (2.0 if cfg.protocol == "paper" else 1.0)})


@pytest.fixture
def suite():
    import tasks
    from tasks import register_aggregate, register_task

    tasks.TASKS.names()  # the built-in tasks first
    for name, base in (("idtoy-a", 10.0), ("idtoy-b", 30.0)):
        register_task(TaskMeta(name, "robot", "toy member", SCORE, "success", needs=Need.NONE,
                               notes={"camera": f"camera of {name}"}), Variant, base=base)
    register_aggregate(AggregateTask(TaskMeta("idtoy-suite", "robot", "mean of the toy members",
                                              (Metric("success_rate", True, "mean success", "%"),), "success_rate",
                                              needs=Need.NONE), ("idtoy-a", "idtoy-b"), metric="success"))
    yield
    for name in NAMES:
        tasks.TASKS._entries.pop(name, None)
        tasks._BOUND.pop(name, None)


def _run(task_config=None):
    from runners.benchmark import RunConfig, run_benchmark

    cfg = RunConfig(encoders=["vit-tiny"], tasks=["idtoy-suite"], progress=False,
                    task_config=task_config or {})
    return {r.task: r for r in run_benchmark(cfg, out=open(os.devnull, "w"))}


PAPER = {"idtoy-a": {"protocol": "paper"}, "idtoy-b": {"protocol": "paper"}}


def _aggregate_runs():
    from bench.store import read_records

    return read_records(kinds=("aggregate",), all_runs=True)


def test_the_members_configs_are_the_aggregates_identity(suite):
    from bench.store import read_records
    from leaderboard.grid import protocol_deviation

    small = _run()
    agg = small["idtoy-suite"]
    assert agg.metrics["success_rate"].value == 20.0
    assert agg.params["protocol.protocol"] == "small" and protocol_deviation(agg.params) == "protocol=small"
    for m in ("idtoy-a", "idtoy-b"):  # which member results it averaged, by config and run
        assert agg.params[f"member.{m}.config_hash"] == small[m].config_hash
        assert agg.params[f"member.{m}.run_id"] == small[m].run_id
    assert "protocol.camera" not in agg.params  # members' descriptive notes stay on their own runs

    again = _run()  # same member runs: reused, not recorded twice
    assert again["idtoy-suite"].run_id == agg.run_id and len(_aggregate_runs()) == 1

    paper = _run(PAPER)  # members rerun under the paper variant: a new aggregate, not "done already"
    new = paper["idtoy-suite"]
    assert new.run_id != agg.run_id and new.config_hash != agg.config_hash and new.identity_hash != agg.identity_hash
    assert new.metrics["success_rate"].value == 40.0
    assert new.params["protocol.protocol"] == "paper" and protocol_deviation(new.params) == ""
    assert new.params["member.idtoy-a.config_hash"] == paper["idtoy-a"].config_hash != agg.params[
        "member.idtoy-a.config_hash"]
    stored = {r.config_hash: r.metrics["success_rate"].value
              for r in read_records(kinds=("aggregate",))}  # newest per identity: both variants kept
    assert stored == {agg.config_hash: 20.0, new.config_hash: 40.0}

    mixed = _run({"idtoy-a": {"protocol": "paper"}})["idtoy-suite"]  # a's paper run, b's small one (both reused)
    assert mixed.metrics["success_rate"].value == 25.0 and len({agg.config_hash, new.config_hash,
                                                                mixed.config_hash}) == 3
    assert mixed.params["protocol.protocol"] == "paper|small" and protocol_deviation(mixed.params)
    assert _run()["idtoy-suite"].run_id == agg.run_id  # small again: the small aggregate, reused
    assert len(_aggregate_runs()) == 3

    # a member recomputed on its own (--force): the next plain run refreshes the aggregate, same identity
    from runners.benchmark import RunConfig, run_benchmark

    redone = run_benchmark(RunConfig(encoders=["vit-tiny"], tasks=["idtoy-a"], progress=False, force=True),
                           out=open(os.devnull, "w"))
    after = _run()["idtoy-suite"]
    assert after.run_id != agg.run_id and after.identity_hash == agg.identity_hash
    assert after.params["member.idtoy-a.run_id"] == redone[0].run_id
    assert [r.run_id for r in read_records(kinds=("aggregate",)) if r.identity_hash == agg.identity_hash] == [after.run_id]
