"""Where the synthetic VLM twins live, as a task data source (light: no numpy, no torch; the task
metadata imports it). The generator is `bench.data.vlm_twins`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.data.sources import SyntheticData, default_synth_preset


def twins_root(preset: str) -> Path:
    from bench.paths import bench_home

    return bench_home() / "data" / f"vlm-twins-{preset}"


@dataclass(frozen=True)
class TwinData(SyntheticData):
    """One twin layout (spatialrgpt | blink | vqav2); generated, with the scenes, on first use."""

    def root(self, preset: str | None = None) -> Path:
        return twins_root(preset or default_synth_preset()) / self.layout

    def generated(self, preset: str | None = None) -> bool:
        return (twins_root(preset or default_synth_preset()) / "manifest.json").is_file()

    def prepare(self, progress: bool = True, preset: str | None = None) -> Path:
        from bench.data.vlm_twins import build_twins

        preset = preset or default_synth_preset()
        return build_twins(preset, twins_root(preset), progress=progress) / self.layout


__all__ = ["TwinData", "twins_root"]
