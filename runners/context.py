"""What a task's `evaluate(ctx, root)` gets: the encoder, cached feature extraction, and logging."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.encoders.base import Encoder
from bench.features import Extractor, FeatureCache, FeatureSpec
from bench.tracking import RunHandle


@dataclass
class TaskContext:
    encoder: Encoder
    device: torch.device
    seed: int
    cache: FeatureCache
    extractor: Extractor
    run: RunHandle | None = None
    progress: bool = True
    artifacts_dir: Path | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def features(self, dataset, identity: dict, transform: str, spec: FeatureSpec, split: str) -> dict[str, torch.Tensor]:
        """Frozen features for a dataset split, from the cache when they were extracted before."""
        return self.cache.get_or_extract(self.extractor, dataset, identity=identity, transform=transform,
                                         spec=spec, desc=f"{self.encoder.name} {split}", progress=self.progress)

    def log_params(self, **params: Any) -> None:
        """Protocol details only known at run time (sizes, effective k, transforms)."""
        self.params.update(params)
        if self.run is not None:
            self.run.log_params(**params)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        """Log a file now. Files written into `artifacts_dir` are logged when the task ends."""
        if self.run is not None:
            self.run.log_file(path, folder)

    def artifact_path(self, name: str) -> Path:
        """Where to write an artifact (picture, JSON) that should land in the run's artifacts."""
        assert self.artifacts_dir is not None, "artifact_path needs a run (set artifacts_dir)"
        path = self.artifacts_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)
