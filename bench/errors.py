"""Errors the CLI turns into a clear message and a non-zero exit (no traceback)."""
from __future__ import annotations

import pickle
from pathlib import Path


class BenchError(RuntimeError):
    """Base class of the errors a user can act on."""


class DataMissingError(BenchError):
    def __init__(self, dataset: str, path: Path, how: str):
        self.dataset, self.path, self.how = dataset, Path(path), how
        super().__init__(f"{dataset} data not found at {self.path}.\n  How to obtain it: {how}")


class NotTrainedError(BenchError):
    """A `+sb` encoder whose SpatialBoost checkpoint does not exist (and cannot be trained here)."""


def _worker_message(msg: str) -> str:
    """The original one-line message inside the text a PyTorch DataLoader worker re-raises with
    (`"Caught X in DataLoader worker process N.\\nOriginal Traceback ...\\nmodule.X: message"`)."""
    if not (msg.startswith("Caught ") and "\nOriginal Traceback" in msg):
        return msg
    last = next((line for line in reversed(msg.splitlines()) if line.strip()), msg)
    head, sep, tail = last.partition(": ")
    return tail if sep and " " not in head else last


class DataError(BenchError):
    """An input file that cannot be used (an image, a ground-truth map or pickle, a weights file, a
    cache shard): one line naming the file and the cause.

    `DataError(path, why)` -> "path: why". `DataError(message)` (one string) is accepted too, because
    PyTorch DataLoader workers re-raise an exception as `type(message)`; the worker's traceback text
    is reduced to the original line (kept in `.worker_traceback`)."""

    def __init__(self, path: str | Path, why: str | None = None):
        if why is None:
            text = str(path)
            line = _worker_message(text)
            self.worker_traceback = text if line != text else None
            self.path, self.why = None, line
            super().__init__(line)
        else:
            self.worker_traceback = None
            self.path, self.why = Path(path), str(why)
            super().__init__(f"{path}: {why}")


class WeightsError(DataError):
    """A weights / checkpoint file that cannot be read (empty, truncated, not the format it claims)."""


class RefusedPickleError(DataError, pickle.UnpicklingError):
    """A pickle (weights `.pt`, ground-truth `.pkl`) that references code or anything but plain
    containers / arrays / tensors: refused before anything is called. Still a `pickle.UnpicklingError`."""


class CacheError(BenchError):
    """Features that must not be cached (not finite) or a cache entry that cannot be repaired."""


class NonFiniteFeaturesError(CacheError):
    """The encoder produced NaN / inf features (or they overflow the cache's storage dtype)."""
