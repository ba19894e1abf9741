"""Errors the CLI turns into a clear message and a non-zero exit (no traceback)."""
from __future__ import annotations

from pathlib import Path


class BenchError(RuntimeError):
    """Base class of the errors a user can act on."""


class DataMissingError(BenchError):
    def __init__(self, dataset: str, path: Path, how: str):
        self.dataset, self.path, self.how = dataset, Path(path), how
        super().__init__(f"{dataset} data not found at {self.path}.\n  How to obtain it: {how}")


class NotTrainedError(BenchError):
    """A `+sb` encoder whose SpatialBoost checkpoint does not exist (and cannot be trained here)."""
