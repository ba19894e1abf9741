"""Where a task's data comes from: a real benchmark in its native layout, or the project's own
generated scenes. Each source says whether it is present and, if not, where it looked and how to
obtain it, before any work starts. Light on purpose: importing it costs nothing (no torch)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench.errors import DataMissingError
from bench.paths import data_root

SYNTH_PRESET_ENV = "BENCH_SYNTH_PRESET"  # a default for the CLI only; runs record the preset they used
DEFAULT_SYNTH_PRESET = "small"


def default_synth_preset() -> str:
    return os.environ.get(SYNTH_PRESET_ENV, DEFAULT_SYNTH_PRESET)


class DataSource(Protocol):
    name: str

    def status(self, preset: str | None = None) -> tuple[bool, str]:
        """(present or obtainable here, where it looked / why not)."""

    def prepare(self, progress: bool = True, preset: str | None = None) -> Path:
        """The dataset root, ready to read; raises DataMissingError with how to obtain it."""


@dataclass(frozen=True)
class SyntheticData:
    """A layout of the project's own generated scenes; generated on first use (so always obtainable)."""

    layout: str  # cls | nyu | ade | retrieval | scenes
    name: str = "synthetic"

    def root(self, preset: str | None = None) -> Path:
        from bench.data.synth.pipeline import default_root

        return default_root(preset or default_synth_preset()) / self.layout

    def generated(self, preset: str | None = None) -> bool:
        return (self.root(preset).parent / "manifest.json").exists()

    def status(self, preset: str | None = None) -> tuple[bool, str]:
        preset = preset or default_synth_preset()
        root = self.root(preset)
        return True, f"{root} ({'generated' if self.generated(preset) else f'will be generated: preset {preset!r}'})"

    def prepare(self, progress: bool = True, preset: str | None = None) -> Path:
        from bench.data.synth import ensure

        return ensure(preset or default_synth_preset(), progress=progress) / self.layout


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

    def status(self, preset: str | None = None) -> tuple[bool, str]:
        absent = self.missing()
        if absent is not None:
            return False, f"{absent} not found (set {self.env_var} or place it under {self.root()})"
        return True, str(self.root())

    def prepare(self, progress: bool = True, preset: str | None = None) -> Path:
        absent = self.missing()
        if absent is not None:
            raise DataMissingError(self.name, absent,
                                   f"{self.how_to_obtain} Then place it at {self.root()} or set {self.env_var}=/path.")
        return self.root()


__all__ = ["DEFAULT_SYNTH_PRESET", "SYNTH_PRESET_ENV", "DataSource", "RealData", "SyntheticData",
           "default_synth_preset"]
