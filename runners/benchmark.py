"""`bench run`: plan, then execute, then record (see runners/plan.py and runners/execute.py)."""
from __future__ import annotations

import sys

from bench.errors import BenchError

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
        if plan.blocked:
            raise BenchError("the plan cannot run here: " + "; ".join(f"{w}: {y.splitlines()[0]}" for w, y in plan.blocked))
        return outcome
    if plan.blocked:  # before any data is generated or any encoder trained
        raise BenchError("cannot run: " + "\n".join(f"  {w}: {y}" for w, y in plan.blocked))
    for name, reason in plan.skipped:
        print(f"skip {name}: {reason}", file=out)
    executor = Executor(plan, out)
    outcome.extend(executor.execute())
    outcome.failures = executor.failures
    return outcome


__all__ = ["Plan", "RunConfig", "RunOutcome", "make_plan", "run_benchmark"]
