"""What a task's behaviour gets: the frozen encoder, cached or online features, a state folder for
resumable fitted heads and policies, named random streams, and logging into the task's run.

It sits below `tasks/` (the runner builds it; tasks only use it), so every `run(ctx, cfg)` is typed.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from bench.encoders.base import Encoder
from bench.feature_store import FeatureStore
from bench.features import Extractor, FeatureCache, FeatureSpec, autocast_for, select_features


class RunLog(Protocol):
    """The part of a tracking run a task may write to (bench.tracking.RunHandle implements it)."""

    def log_params(self, **params: Any) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_file(self, path: str | Path, folder: str | None = None) -> None: ...


def stream_seed(seed: int, name: str) -> int:
    """A stable 63-bit seed per (run seed, stream name): independent streams that never shift when
    another part of the task draws more or fewer numbers."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:8], "little") >> 1


@dataclass
class EvalContext:
    encoder: Encoder
    device: torch.device
    seed: int
    cache: FeatureCache
    root: Path | None = None  # the prepared dataset root (None for tasks without a data folder)
    batch_size: int = 64
    num_workers: int = 0
    progress: bool = True
    run: RunLog | None = None
    artifacts_dir: Path | None = None  # files written here are logged when the task ends
    state_root: Path | None = None  # this (encoder, task, config, seed)'s resumable state
    params: dict[str, Any] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("bench.task"))

    def __post_init__(self) -> None:
        self.extractor = Extractor(self.encoder, device=self.device, batch_size=self.batch_size,
                                   num_workers=self.num_workers)

    # ------------------------------------------------------------------------------- features
    def features(self, dataset, identity: dict, transform: str, spec: FeatureSpec, split: str) -> FeatureStore:
        """Frozen features of a dataset split from the cache (extracted once); shards load lazily."""
        return self.cache.get_or_extract(self.extractor, dataset, identity=identity, transform=transform,
                                         spec=spec, desc=f"{self.encoder.name} {split}", progress=self.progress)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, spec: FeatureSpec) -> dict[str, torch.Tensor]:
        """Online features of a preprocessed batch (B, 3, H, W): no_grad, bf16 autocast on GPU, fp32
        results on the context's device, in chunks of `batch_size`."""
        self.encoder.to(self.device)
        chunks: dict[str, list[torch.Tensor]] = {}
        for s in range(0, images.shape[0], max(1, self.batch_size)):
            batch = images[s:s + self.batch_size].to(self.device, non_blocking=True)
            with autocast_for(self.device):
                out = self.encoder(batch, n_last_blocks=spec.n_last_blocks)
            for k, v in select_features(out, spec).items():
                chunks.setdefault(k, []).append(v.float())
        return {k: torch.cat(v) for k, v in chunks.items()}

    # --------------------------------------------------------------------------- state, rngs
    def state_dir(self, name: str = "") -> Path:
        """A folder that survives the run (and an interrupted one): fitted heads, policies, progress."""
        if self.state_root is None:
            raise RuntimeError("this context has no state folder (the runner sets state_root)")
        path = self.state_root / name if name else self.state_root
        path.mkdir(parents=True, exist_ok=True)
        return path

    def rng(self, name: str) -> torch.Generator:
        return torch.Generator().manual_seed(stream_seed(self.seed, name))

    def np_rng(self, name: str) -> np.random.Generator:
        return np.random.default_rng(stream_seed(self.seed, name))

    def generator(self) -> torch.Generator:
        """The run seed's plain generator (kept for protocols pinned to it)."""
        return torch.Generator().manual_seed(self.seed)

    # -------------------------------------------------------------------------------- logging
    def log_params(self, **params: Any) -> None:
        """Protocol details only known at run time (sizes, effective k, chosen head)."""
        self.params.update(params)
        if self.run is not None:
            self.run.log_params(**params)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Curves (loss per step, success per epoch): not results; results are what `run` returns."""
        if self.run is not None:
            self.run.log_metrics(metrics, step=step)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        if self.run is not None:
            self.run.log_file(path, folder)

    def artifact_path(self, name: str) -> Path | None:
        """Where to write an artifact (picture, JSON) for the run; None when nothing is tracked."""
        if self.artifacts_dir is None:
            return None
        path = self.artifacts_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


__all__ = ["EvalContext", "RunLog", "stream_seed"]
