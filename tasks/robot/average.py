"""`cortexbench-average` (paper Tables 4, 8, 9, column "avg."): the mean of the suite scores, each
suite weighted equally (not the mean over all tasks): e.g. OpenCLIP (52.6 + 83.0 + 58.5 + 67.7) / 4
= 65.5 in Table 4. Members are the leaf tasks (the runner stores those); suites group them."""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.task import AggregateTask, TaskResult


@dataclass(frozen=True)
class MeanOfSuites(AggregateTask):
    suites: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (suite aggregate name, its member tasks)

    def __post_init__(self) -> None:
        super().__post_init__()
        grouped = [m for _, members in self.suites for m in members]
        if sorted(grouped) != sorted(self.members):
            raise ValueError(f"aggregate {self.meta.name}: suites must partition the members")

    def compute(self, member_values: dict[str, float]) -> TaskResult:
        missing = [m for m in self.members if m not in member_values]
        if missing:
            raise ValueError(f"aggregate {self.meta.name}: members without a result: {missing}")
        suite_means = {s: statistics.fmean(float(member_values[m]) for m in ms) for s, ms in self.suites}
        head = self.meta.headline
        breakdown = {f"suite:{s}": {head: v} for s, v in suite_means.items()}
        breakdown.update({f"member:{m}": {head: float(member_values[m])} for m in self.members})
        return TaskResult({head: statistics.fmean(suite_means.values())}, breakdown)


__all__ = ["MeanOfSuites"]
