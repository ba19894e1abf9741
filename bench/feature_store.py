"""Reading cached features back: a lazy, verified, memory-mapped view of one cache entry's shards.

Split from `bench.features` (which writes entries) so each stays one concern: here, shards are
opened on demand, checked against what `index.json` recorded, and memory-mapped (copy-on-write:
a consumer may write to what it reads, the file never changes), so only the rows a head touches are
read and they stay evictable page cache rather than process memory. `store[key]` of a one-shard
entry is a view of the shard's bytes; an entry of many shards larger than `FLAT_MIN_BYTES` is
copied once into one flat file beside its shards (`flat-KEY.bin`, its record `flat-KEY.json`:
the shards' sha256 it was built from and its own), memory-mapped the same way. That is how the full
NYU train split and ImageNet-1k train features (1.28M x 1024 fp16) are used within 24 GB.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import warnings
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import torch
from safetensors import safe_open

from bench.errors import CacheError

STORAGE_DTYPES = {torch.float16: "float16", torch.float32: "float32"}
_SAFETENSORS_DTYPES = {"F16": torch.float16, "F32": torch.float32, "BF16": torch.bfloat16}
# numpy dtype whose bytes hold each storage dtype (bf16 has none: its bits are mapped as int16, then viewed)
_MAP_DTYPES = {torch.float16: (np.float16, None), torch.float32: (np.float32, None),
               torch.bfloat16: (np.int16, torch.bfloat16)}
FLAT_MIN_BYTES = 64 << 20  # below this a many-shard output is concatenated in memory instead


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


def safetensors_layout(path: Path) -> tuple[int, dict[str, dict]]:
    """(offset of the data section, {name: {dtype, shape, data_offsets}}) from a safetensors header."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return 8 + n, header


def map_array(path: Path, offset: int, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    """A copy-on-write memory map of `shape` elements of `dtype` at byte `offset` of `path`, as a tensor."""
    np_dtype, view = _MAP_DTYPES[dtype]
    if not int(np.prod(shape)):
        return torch.empty(shape, dtype=dtype)
    arr = np.memmap(path, dtype=np_dtype, mode="c", offset=offset, shape=tuple(shape))
    t = torch.from_numpy(arr)
    return t.view(view) if view is not None else t


def _write_flat(path: Path, pieces: list[tuple[Path, int, int]]) -> str:
    """The byte ranges `pieces` (file, offset, size) written one after another to `path` (atomically),
    by plain reads (page cache, not this process's memory); returns the new file's sha256."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    digest = hashlib.sha256()
    step = 16 << 20
    with open(tmp, "wb") as out:
        for src, offset, size in pieces:
            with open(src, "rb") as f:
                f.seek(offset)
                left = size
                while left:
                    buf = f.read(min(step, left))
                    if not buf:
                        raise OSError(f"{src}: ended early")
                    out.write(buf)
                    digest.update(buf)
                    left -= len(buf)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return digest.hexdigest()


class FeatureStore(Mapping[str, torch.Tensor]):
    """One cached split, read from its shards on demand: `store[key]` maps that output (once);
    `store.rows(key, idx)` reads just the rows asked for, from the shards they live in, so a split
    larger than memory can still be sampled. Behaves as the dict of tensors the cache used to return.

    With `parts` (the index records), a shard's sha256 is checked the first time it is read; a
    mismatch calls `repair(i)` (re-extract it: what `FeatureCache` passes) with a warning, or raises
    `CacheError` naming the shard when there is no `repair`."""

    def __init__(self, folder: Path, shards: list[tuple[int, int]], parts: list[dict] | None = None,
                 keys: tuple[str, ...] | None = None, repair: Callable[[int], dict] | None = None):
        self.folder, self.shards = Path(folder), shards
        self._full: dict[str, torch.Tensor] = {}
        self._parts, self._repair = parts, repair
        self._verified: set[int] = set()
        self._maps: dict[tuple[int, str], torch.Tensor] = {}
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
            self._maps = {k: v for k, v in self._maps.items() if k[0] != i}
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

    def _mapped(self, i: int, key: str) -> torch.Tensor:
        """Shard i's `key`, memory-mapped (verified first; one map per shard and output)."""
        self._verify(i)
        if (i, key) in self._maps:
            return self._maps[i, key]
        path = self._part(i)
        try:
            start, header = safetensors_layout(path)
            rec = header[key]
            t = map_array(path, start + rec["data_offsets"][0], _SAFETENSORS_DTYPES[rec["dtype"]], tuple(rec["shape"]))
        except Exception as exc:
            raise CacheError(f"{path}: unreadable feature shard ({exc}); delete {self.folder} to re-extract it") from None
        self._maps[i, key] = t
        return t

    def column(self, key: str) -> "StoreRows":
        """One output as a row-indexable view that reads only the rows asked for (no flat copy)."""
        if key not in self._keys:
            raise KeyError(key)
        return StoreRows(self, key)

    def _flat(self, key: str, parts: list[torch.Tensor]) -> torch.Tensor:
        """The output as one memory-mapped file built from (verified) `parts`; reused while the shards
        it was built from are the ones index.json records, its own sha256 checked once per process."""
        path, rec_path = self.folder / f"flat-{key}.bin", self.folder / f"flat-{key}.json"
        shape = (self.n_rows, *parts[0].shape[1:])
        sources = [p["sha256"] for p in self._parts] if self._parts is not None else None
        nbytes = sum(t.numel() * t.element_size() for t in parts)
        try:
            rec = json.loads(rec_path.read_text())
            ok = (rec.get("sources") == sources and rec.get("shape") == list(shape) and rec.get("dtype") == str(parts[0].dtype)
                  and path.stat().st_size == nbytes and (sources is None or file_sha256(path) == rec.get("sha256")))
        except (OSError, ValueError):
            ok = False
        if not ok:
            rec_path.unlink(missing_ok=True)
            pieces = []
            for i in range(len(self.shards)):
                start, header = safetensors_layout(self._part(i))
                lo, hi = header[key]["data_offsets"]
                pieces.append((self._part(i), start + lo, hi - lo))
            sha = _write_flat(path, pieces)
            tmp = rec_path.with_name(rec_path.name + ".tmp")
            tmp.write_text(json.dumps({"sources": sources, "shape": list(shape), "dtype": str(parts[0].dtype), "sha256": sha}))
            os.replace(tmp, rec_path)
        return map_array(path, 0, parts[0].dtype, shape)

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._keys:
            raise KeyError(key)
        if key not in self._full:
            parts = [self._mapped(i, key) for i in range(len(self.shards))]
            nbytes = sum(t.numel() * t.element_size() for t in parts)
            if len(parts) == 1:
                self._full[key] = parts[0]
            elif nbytes < FLAT_MIN_BYTES:
                self._full[key] = torch.cat(parts)
            else:
                self._full[key] = self._flat(key, parts)
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
        ends = torch.tensor([e for _, e in self.shards])
        which = torch.searchsorted(ends, idx, right=True)  # the shard each row lives in
        out: torch.Tensor | None = None
        for i in torch.unique(which).tolist():
            if i >= len(self.shards):
                raise IndexError(f"row {int(idx.max())} of {self.n_rows}")
            sel = (which == i).nonzero().flatten()
            part = self._mapped(i, key)[idx[sel] - self.shards[i][0]]
            if out is None:
                out = torch.empty((len(idx), *part.shape[1:]), dtype=part.dtype)
            out[sel] = part
        if out is None:
            raise IndexError("no rows selected")
        return out


class StoreRows:
    """`store.column(key)`: `rows[idx]` gathers rows `idx` (int, sequence or tensor) from the shards
    they live in; `shape`, `dtype` and `len` describe the whole output. What the dense heads sample
    batches from when a split is larger than memory (and than a second, flat copy on disk)."""

    def __init__(self, store: FeatureStore, key: str):
        self.store, self.key = store, key
        first = store._mapped(0, key)
        self.shape = torch.Size((store.n_rows, *first.shape[1:]))
        self.dtype = first.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx) -> torch.Tensor:
        if isinstance(idx, int):
            return self.store.rows(self.key, [idx])[0]
        return self.store.rows(self.key, torch.as_tensor(idx, dtype=torch.long).reshape(-1))


__all__ = ["FLAT_MIN_BYTES", "StoreRows", "STORAGE_DTYPES", "CacheRepairWarning", "FeatureStore", "file_sha256", "inspect_part",
           "map_array", "part_name", "safetensors_layout"]
