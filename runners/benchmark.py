"""`bench run`: plan, then execute, then record (see runners/plan.py and runners/execute.py)."""
from __future__ import annotations

import sys

from runners.execute import Executor
from runners.plan import Plan, RunConfig, make_plan


class RunOutcome(list):
    """The records of a run (finished and reused), with `.failures`: (encoder, task, cause) of the
    pairs that failed (recorded as FAILED runs while the others ran)."""

    failures: list[tuple[str, str, str]]


def run_benchmark(cfg: RunConfig, out=None, dry_run: bool = False) -> RunOutcome:
    out = out or sys.stdout
    plan = make_plan(cfg)
    outcome = RunOutcome()
    outcome.failures = []
    if dry_run:
        print(plan.render(), file=out)
        return outcome
    for name, reason in plan.skipped:
        print(f"skip {name}: {reason}", file=out)
    executor = Executor(plan, out)
    outcome.extend(executor.execute())
    outcome.failures = executor.failures
    return outcome


__all__ = ["Plan", "RunConfig", "RunOutcome", "make_plan", "run_benchmark"]
