"""`NAME+sb`: the SpatialBoost version of encoder NAME, loaded from its trained checkpoint.

The bundled trainer writes `BENCH_HOME/checkpoints/<NAME>+sb/boosted.safetensors`. Until a
checkpoint exists this raises a clear error: never a silent fallback to the base encoder.
"""
from __future__ import annotations

from pathlib import Path

from bench.encoders.base import Encoder
from bench.errors import NotTrainedError
from bench.paths import checkpoints_root


def checkpoint_path(name: str) -> Path:
    return checkpoints_root() / name / "boosted.safetensors"


def load_boosted(name: str, weights: str | Path | None = None, seed: int = 0) -> Encoder:
    path = Path(weights) if weights else checkpoint_path(name)
    if not path.exists():
        raise NotTrainedError(
            f"{name} is not trained yet: no SpatialBoost checkpoint at {path}. The bundled SpatialBoost "
            f"trainer is not available in this version, so {name} cannot be evaluated; evaluate the base "
            f"encoder {name[:-3]!r} instead, or pass --weights FILE for a checkpoint trained elsewhere.")
    raise NotTrainedError(f"loading SpatialBoost checkpoints ({path}) needs the bundled trainer, which this "
                          "version does not include yet.")
