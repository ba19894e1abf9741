"""Reading cached features back: a lazy, verified view of one cache entry's shards.

Split from `bench.features` (which writes entries) so each stays one concern: here, shards are
opened on demand, checked against what `index.json` recorded, and read row by row when a split
is larger than memory.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Callable, Iterator, Mapping

import torch
from safetensors import safe_open

from bench.errors import CacheError

STORAGE_DTYPES = {torch.float16: "float16", torch.float32: "float32"}
_SAFETENSORS_DTYPES = {"F16": torch.float16, "F32": torch.float32, "BF16": torch.bfloat16}


class CacheRepairWarning(UserWarning):
    """A damaged cache entry (or shard) was found and is being re-extracted."""


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def part_name(i: int) -> str:
    return f"part-{i:05d}.safetensors"


def inspect_part(path: Path, rows: int, keys: set[str], dtype: torch.dtype, size: int | None = None) -> str | None:
    """Why the shard at `path` cannot be used (cheap: stat + header), or None when it looks right."""
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc})"
    if size is not None and actual != size:
        return f"{actual} bytes where index.json recorded {size} (truncated or overwritten)"
    try:
        with safe_open(str(path), framework="pt") as f:
            found = set(f.keys())
            if found != keys:
                return f"holds outputs {sorted(found)}, expected {sorted(keys)}"
            for k in sorted(found):
                sl = f.get_slice(k)
                shape, got = sl.get_shape(), _SAFETENSORS_DTYPES.get(sl.get_dtype())
                if not shape or shape[0] != rows:
                    return f"{k} has {shape[0] if shape else 0} rows, expected {rows}"
                if got != dtype:
                    return f"{k} is stored as {sl.get_dtype()}, expected {STORAGE_DTYPES.get(dtype, dtype)}"
    except Exception as exc:  # SafetensorError: header too small / incomplete / garbage
        return f"unreadable safetensors file ({exc})"
    return None


class FeatureStore(Mapping[str, torch.Tensor]):
    """One cached split, read from its shards on demand: `store[key]` loads that output only (once);
    `store.rows(key, idx)` reads just the shards the rows live in, so a split larger than memory can
    still be sampled. Behaves as the dict of tensors the cache used to return.

    With `parts` (the index records), a shard's sha256 is checked the first time it is read; a
    mismatch calls `repair(i)` (re-extract it: what `FeatureCache` passes) with a warning, or raises
    `CacheError` naming the shard when there is no `repair`."""

    def __init__(self, folder: Path, shards: list[tuple[int, int]], parts: list[dict] | None = None,
                 keys: tuple[str, ...] | None = None, repair: Callable[[int], dict] | None = None):
        self.folder, self.shards = Path(folder), shards
        self._full: dict[str, torch.Tensor] = {}
        self._parts, self._repair = parts, repair
        self._verified: set[int] = set()
        if not shards:
            raise ValueError(f"empty feature entry {folder}")
        if keys is None:
            keys = tuple(self._open(0, lambda f: tuple(f.keys())))
        self._keys = tuple(keys)

    def _part(self, i: int) -> Path:
        return self.folder / part_name(i)

    def _verify(self, i: int) -> None:
        if self._parts is None or i in self._verified:
            return
        rec = self._parts[i]
        try:
            actual = file_sha256(self._part(i))
            why = None if actual == rec["sha256"] else f"sha256 {actual[:12]}... differs from index.json ({rec['sha256'][:12]}...)"
        except OSError as exc:
            why = f"unreadable ({exc})"
        if why:
            if self._repair is None:
                raise CacheError(f"{self._part(i)}: damaged feature shard: {why}; delete {self.folder} to re-extract it")
            warnings.warn(f"feature cache: {self._part(i)}: {why}; re-extracting it", CacheRepairWarning, stacklevel=3)
            self._parts[i] = self._repair(i)
        self._verified.add(i)

    def _open(self, i: int, fn):
        self._verify(i)
        try:
            with safe_open(str(self._part(i)), framework="pt") as f:
                return fn(f)
        except CacheError:
            raise
        except Exception as exc:
            raise CacheError(f"{self._part(i)}: unreadable feature shard ({exc}); delete {self.folder} "
                             f"to re-extract it") from None

    @property
    def n_rows(self) -> int:
        return self.shards[-1][1]

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._keys:
            raise KeyError(key)
        if key not in self._full:
            self._full[key] = torch.cat([self._open(i, lambda f: f.get_tensor(key)) for i in range(len(self.shards))])
        return self._full[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def rows(self, key: str, indices) -> torch.Tensor:
        """Rows `indices` of one output, in the order given, touching only their shards."""
        if key in self._full:
            return self._full[key][torch.as_tensor(indices, dtype=torch.long)]
        if key not in self._keys:
            raise KeyError(key)
        idx = torch.as_tensor(indices, dtype=torch.long)
        out: torch.Tensor | None = None
        for i, (s, e) in enumerate(self.shards):
            sel = ((idx >= s) & (idx < e)).nonzero().flatten()
            if not len(sel):
                continue
            part = self._open(i, lambda f: f.get_tensor(key))[idx[sel] - s]
            if out is None:
                out = torch.empty((len(idx), *part.shape[1:]), dtype=part.dtype)
            out[sel] = part
        if out is None:
            raise IndexError("no rows selected")
        return out


__all__ = ["STORAGE_DTYPES", "CacheRepairWarning", "FeatureStore", "file_sha256", "inspect_part", "part_name"]
