"""Data sources of the 3D-scene probes (light: no torch): real ScanNet in the OpenScene / Lexicon3D
layouts (`bench.data.scannet`) and its synthetic twin written by `bench.data.synth.scannet3d`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.data.sources import RealData, SyntheticData, default_synth_preset

HOW_TO_GET = ("ScanNet v2 (http://www.scan-net.org, terms of use form) exported with OpenScene's "
              "scripts/preprocess/preprocess_2d_scannet.py (frame_skip 20, 320x240) and preprocess_3d_scannet.py "
              "into <root>/scannet_2d and <root>/scannet_3d/{train,val}; split lists scannetv2_{train,val}.txt in "
              "<root>/meta_data; Lexicon3D's unified_pose.zip unpacked to <root>/lexicon3d/unified_pose.")


@dataclass(frozen=True)
class Synth3DData(SyntheticData):
    """The synthetic ScanNet twin under `synth-<preset>/scannet3d/` with its own marker, lock and manifest
    (generated on first use, in a child process, by `bench.data.synth.scannet3d`)."""

    layout: str = "scannet3d"
    name: str = "synthetic ScanNet (Lexicon3D layouts)"

    def generated(self, preset: str | None = None) -> bool:
        from bench.data.synth.scannet3d import manifest_ok

        preset = preset or default_synth_preset()
        return manifest_ok(self.root(preset), preset) is not None

    def prepare(self, progress: bool = True, preset: str | None = None) -> Path:
        from bench.data.synth.scannet3d import ensure3d

        preset = preset or default_synth_preset()
        return ensure3d(preset, self.root(preset), progress=progress)


def scannet_data(name: str, required: tuple[str, ...], extra_how: str = "") -> RealData:
    return RealData(name, "scannet", "BENCH_SCANNET", ("scannet_2d", "scannet_3d") + required,
                    (HOW_TO_GET + " " + extra_how).strip())


__all__ = ["HOW_TO_GET", "Synth3DData", "scannet_data"]
