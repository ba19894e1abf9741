"""`bench run`: plan, then execute, then record (see runners/plan.py and runners/execute.py)."""
from __future__ import annotations

import sys

from bench.results import ResultRecord
from runners.execute import Executor
from runners.plan import Plan, RunConfig, make_plan


def run_benchmark(cfg: RunConfig, out=None, dry_run: bool = False) -> list[ResultRecord]:
    out = out or sys.stdout
    plan = make_plan(cfg)
    for name, reason in plan.skipped:
        print(f"skip {name}: {reason}", file=out)
    if dry_run:
        print(plan.render(), file=out)
        return []
    return Executor(plan, out).execute()


__all__ = ["Plan", "RunConfig", "make_plan", "run_benchmark"]
