"""What a task is: a dataset, a protocol, the metrics it reports (each with its direction), and an
`evaluate(ctx, root)` function. Tasks register themselves in `tasks/` (one small file each)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from bench.errors import DataMissingError
from bench.paths import data_root

SYNTH_PRESET_ENV = "BENCH_SYNTH_PRESET"
DEFAULT_SYNTH_PRESET = "small"


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    description: str = ""

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"


class DataSource(Protocol):
    name: str

    def status(self) -> tuple[bool, str]:
        """(present, where it looked / why not)."""

    def prepare(self, progress: bool = True) -> Path:
        """The dataset root, ready to read; raises DataMissingError with how to obtain it."""


def synth_preset() -> str:
    return os.environ.get(SYNTH_PRESET_ENV, DEFAULT_SYNTH_PRESET)


@dataclass(frozen=True)
class SyntheticData:
    """A layout of the project's own generated scenes; generated on first use."""

    layout: str  # cls | nyu | ade | retrieval | scenes
    name: str = "synthetic"

    def root(self, preset: str | None = None) -> Path:
        from bench.data.synth import default_root

        return default_root(preset or synth_preset()) / self.layout

    def status(self) -> tuple[bool, str]:
        root = self.root()
        ready = (root.parent / "manifest.json").exists()
        return True, f"{root} ({'generated' if ready else f'will be generated: preset {synth_preset()!r}'})"

    def prepare(self, progress: bool = True) -> Path:
        from bench.data.synth import ensure

        return ensure(synth_preset(), progress=progress) / self.layout


@dataclass(frozen=True)
class RealData:
    """A real benchmark in its native layout under BENCH_DATA/<subdir> (or the path in `env_var`)."""

    name: str
    subdir: str
    env_var: str
    required: tuple[str, ...]  # relative paths that must exist
    how_to_obtain: str

    def root(self) -> Path:
        override = os.environ.get(self.env_var)
        return Path(override).resolve() if override else data_root() / self.subdir

    def missing(self) -> Path | None:
        """The first required path that is absent, or None when the dataset is in place."""
        root = self.root()
        return next((root / r for r in self.required if not (root / r).exists()), None)

    def status(self) -> tuple[bool, str]:
        absent = self.missing()
        if absent is not None:
            return False, f"{absent} not found (set {self.env_var} or place it under {self.root()})"
        return True, str(self.root())

    def prepare(self, progress: bool = True) -> Path:
        absent = self.missing()
        if absent is not None:
            raise DataMissingError(self.name, absent,
                                   f"{self.how_to_obtain} Then place it at {self.root()} or set {self.env_var}=/path.")
        return self.root()


@dataclass(frozen=True)
class Task:
    name: str
    group: str  # classification | depth | segmentation | retrieval | 3d | robot
    description: str
    data: Any  # a DataSource
    metrics: tuple[Metric, ...]
    headline: str
    protocol: dict[str, Any]
    evaluate: Callable[..., dict[str, float]] = field(repr=False, compare=False)
    paper_task: str | None = None  # the row name in the paper's tables, when it is a paper task

    def __post_init__(self) -> None:
        names = {m.name for m in self.metrics}
        if self.headline not in names:
            raise ValueError(f"task {self.name}: headline {self.headline!r} is not one of its metrics")

    @property
    def synthetic(self) -> bool:
        return isinstance(self.data, SyntheticData)

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)
