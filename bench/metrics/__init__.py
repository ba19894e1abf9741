"""Metrics that know themselves: direction, unit and role travel with every number.

`role` tells reporting what a number is for: a `score` ranks encoders; a `reference` (chance,
a constant predictor, random rankings) is a floor printed beside scores; a `diagnostic`
(held-out selection scores, losses) explains a run. Tables and the page show scores and hide the
rest unless asked. Shared metrics are declared once, here or in a sibling module.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

ROLES = ("score", "reference", "diagnostic")


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    description: str = ""
    unit: str = ""  # "%", "m", "" (a ratio or a count)
    role: str = "score"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"metric {self.name}: role must be one of {ROLES}, got {self.role!r}")

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"

    @property
    def worst(self) -> float:
        return -math.inf if self.higher_is_better else math.inf

    def is_better(self, a: float, b: float) -> bool:
        """True when `a` beats `b`; NaN never beats anything."""
        if a != a:
            return False
        if b != b:
            return True
        return a > b if self.higher_is_better else a < b

    def best_index(self, values) -> int:
        """Index of the best value (first on ties, NaN last): one selection rule for every head bank."""
        best = None
        for i, v in enumerate(values):
            if best is None or self.is_better(float(v), float(values[best])):
                best = i
        if best is None:
            raise ValueError(f"{self.name}: no values to choose from")
        return best

    def reference(self, description: str | None = None) -> "Metric":
        return Metric(self.name, self.higher_is_better, description or self.description, self.unit, "reference")


def reference(name: str, higher_is_better: bool, description: str, unit: str = "") -> Metric:
    return Metric(name, higher_is_better, description, unit, "reference")


def diagnostic(name: str, higher_is_better: bool, description: str, unit: str = "") -> Metric:
    return Metric(name, higher_is_better, description, unit, "diagnostic")


__all__ = ["ROLES", "Metric", "diagnostic", "reference"]
