"""Values derived from a dataset (ground truth read and resized, a baseline over the annotations) that
several tasks of one run compute identically: computed once per run, served to the next task.

The memo lives on the run's `FeatureCache` (`ctx.cache.memo`: one per `bench run`, so nothing outlives
the run), is keyed by the content identity the caller passes (file identities, sizes, indices: a
different dataset or a changed file is a different key) and holds at most `max_bytes`; a value that
does not fit is computed and returned without being kept (callers that know a value's size before
computing it ask `fits` first), so a full-size split never pins memory; `max_bytes=0` keeps nothing. Callers must only memoise pure functions of the key: the result is the same object for every
task, so it is treated as read-only.
"""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any, Callable, TypeVar

import numpy as np
import torch

T = TypeVar("T")
DEFAULT_MAX_BYTES = 1 << 30


def nbytes(value: Any) -> int:
    """Bytes held by arrays / tensors inside `value` (lists, tuples, dicts of them); scalars count 64."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    return 64


class RunMemo:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self.entries: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self.hits = self.misses = 0

    @staticmethod
    def digest(key: dict) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()

    def held(self) -> int:
        return sum(size for _, size in self.entries.values())

    def get(self, key: dict, compute: Callable[[], T]) -> T:
        """`compute()` once per `key` in this run (kept if its measured size fits)."""
        k = self.digest(key)
        if k in self.entries:
            self.hits += 1
            self.entries.move_to_end(k)
            return self.entries[k][0]
        self.misses += 1
        value = compute()
        size = nbytes(value)
        if size > self.max_bytes:
            return value
        while self.entries and self.held() + size > self.max_bytes:
            self.entries.popitem(last=False)  # least recently used first
        self.entries[k] = (value, size)
        return value

    def fits(self, size_hint: int) -> bool:
        return size_hint <= self.max_bytes


__all__ = ["DEFAULT_MAX_BYTES", "RunMemo", "nbytes"]
