"""Batched feature extraction with an on-disk cache (fp16, or fp32 on request) that resumes after an
interruption and never serves features it cannot vouch for.

A cache entry is keyed by everything that changes the numbers: encoder identity (name, weights
hash, preprocessing), dataset identity (relative file paths, sizes and mtimes: `bench.data.fingerprint`;
never the absolute root, so a moved dataset or a copied BENCH_HOME keeps its cache), split,
transform, the requested outputs and the storage dtype. It is written in shards
(`part-NNNNN.safetensors`, each atomic) and sealed by `index.json`; a run that dies midway keeps its
finished shards and the next run extracts only the rest.

Integrity (format 2). `index.json` records, per shard, its row range, byte size and sha256 (taken
when the shard is written). Opening an entry checks every shard cheaply: present, the recorded byte
size, a readable safetensors header whose outputs, dtype and row count match. The sha256 of a
shard is checked when its bytes are first read by the `FeatureStore` (they are read then anyway),
so an entry larger than memory is not read twice on open. A shard failing either check is
re-extracted, with a `CacheRepairWarning` naming it; only what is damaged is redone.

Finiteness. Features are checked before they are written: NaN / inf from the encoder, or values
beyond the storage dtype's range (fp16: |x| > 65504), raise `NonFiniteFeaturesError` naming the
encoder, the output (cls / avgpool / patches) and the block; nothing non-finite is ever cached.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from bench.encoders.base import Encoder, EncoderOutput
from bench.errors import CacheError, NonFiniteFeaturesError
from bench.io import atomic_path, read_json, write_json
from bench.paths import cache_root

OUTPUTS = ("cls", "avgpool", "patches")
CACHE_FORMAT = 2
STORAGE_DTYPES = {torch.float16: "float16", torch.float32: "float32"}
_SAFETENSORS_DTYPES = {"F16": torch.float16, "F32": torch.float32, "BF16": torch.bfloat16}


class CacheRepairWarning(UserWarning):
    """A damaged cache entry (or shard) was found and is being re-extracted."""


@dataclass(frozen=True)
class FeatureSpec:
    """Which features to keep: per block (last `n_last_blocks`), stacked on dim 1."""

    outputs: tuple[str, ...] = ("cls",)
    n_last_blocks: int = 1

    def __post_init__(self) -> None:
        bad = set(self.outputs) - set(OUTPUTS)
        if bad:
            raise ValueError(f"unknown feature outputs {sorted(bad)}; choose from {OUTPUTS}")


def select_features(out: EncoderOutput, spec: FeatureSpec) -> dict[str, torch.Tensor]:
    blocks = out.blocks[-spec.n_last_blocks:]
    feats: dict[str, torch.Tensor] = {}
    if "cls" in spec.outputs:
        feats["cls"] = torch.stack([b.cls for b in blocks], 1)  # (B, L, D)
    if "avgpool" in spec.outputs:
        feats["avgpool"] = torch.stack([b.patches.mean(dim=(1, 2)) for b in blocks], 1)  # (B, L, D)
    if "patches" in spec.outputs:
        feats["patches"] = torch.stack([b.patches for b in blocks], 1)  # (B, L, h, w, D)
    return feats


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast_for(device: torch.device):
    """bf16 autocast on GPU (what the reference evals use); exact fp32 on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def storage_dtype_name(dtype: torch.dtype) -> str:
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"feature storage dtype must be torch.float16 or torch.float32, got {dtype}")
    return STORAGE_DTYPES[dtype]


def non_finite_error(encoder: Encoder, output: str, source: torch.Tensor, stored: torch.Tensor,
                     spec: FeatureSpec, dtype: torch.dtype) -> NonFiniteFeaturesError:
    """The error for a batch whose `output` features (B, L, ...) are not finite once in `dtype`."""
    n_last = source.shape[1]
    total = getattr(encoder, "num_blocks", None)
    src_bad = ~torch.isfinite(source)
    overflow = not bool(src_bad.any())
    bad = ~torch.isfinite(stored) if overflow else src_bad
    per_block = bad.flatten(2).any(2).any(0) if bad.dim() > 2 else bad.any(0)
    level = int(per_block.nonzero()[0, 0])
    block = f"block {total - n_last + level} of {total}" if isinstance(total, int) else f"block {level - n_last}"
    where = (f"encoder {encoder.name!r}: {output} features at {block} (last {spec.n_last_blocks} requested)")
    if overflow:
        peak = float(source[:, level].abs().max())
        return NonFiniteFeaturesError(
            f"{where} overflow {STORAGE_DTYPES.get(dtype, dtype)} storage (max |value| {peak:.4g} > "
            f"{torch.finfo(dtype).max:.6g}); store features in float32 (FeatureCache(dtype=torch.float32)). "
            f"Nothing was cached for them.")
    sel = source[:, level]
    n_nan, n_inf = int(torch.isnan(sel).sum()), int(torch.isinf(sel).sum())
    return NonFiniteFeaturesError(
        f"{where} are not finite ({n_nan} NaN, {n_inf} inf of {sel.numel()} values in a batch of "
        f"{source.shape[0]}): the encoder itself produced them (broken or NaN weights?). Nothing was cached for them.")


@dataclass
class Extractor:
    encoder: Encoder
    device: torch.device = field(default_factory=lambda: resolve_device("auto"))
    batch_size: int = 64
    num_workers: int = 1

    def loader(self, dataset: Dataset, batch_sampler=None) -> DataLoader:
        kwargs = dict(batch_sampler=batch_sampler) if batch_sampler is not None else \
            dict(batch_size=self.batch_size, shuffle=False)
        return DataLoader(dataset, num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
                          prefetch_factor=4 if self.num_workers else None, **kwargs)

    @torch.inference_mode()
    def batches(self, loader: DataLoader, spec: FeatureSpec, dtype: torch.dtype = torch.float16,
                check_finite: bool = True) -> Iterator[dict[str, torch.Tensor]]:
        """Features (`dtype`, CPU) batch by batch, in loader order. With `check_finite`, NaN / inf
        (from the encoder, or by overflowing `dtype`) raise `NonFiniteFeaturesError`."""
        self.encoder.to(self.device)
        for images, *_ in loader:
            with autocast_for(self.device):
                out = self.encoder(images.to(self.device, non_blocking=True), n_last_blocks=spec.n_last_blocks)
            result = {}
            for k, v in select_features(out, spec).items():
                stored = v.to(dtype)
                if check_finite and not bool(torch.isfinite(stored).all()):
                    raise non_finite_error(self.encoder, k, v, stored, spec, dtype)
                result[k] = stored.to("cpu")
            yield result

    def run(self, dataset: Dataset, spec: FeatureSpec, *, desc: str = "extract",
            progress: bool = True, dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
        """Extract features for a whole dataset (`dtype`, on the CPU), in dataset order."""
        chunks: dict[str, list[torch.Tensor]] = {}
        bar = tqdm(total=len(dataset), desc=desc, unit="img", disable=not progress, leave=False)
        for feats in self.batches(self.loader(dataset), spec, dtype):
            for k, v in feats.items():
                chunks.setdefault(k, []).append(v)
            bar.update(next(iter(feats.values())).shape[0])
        bar.close()
        return {k: torch.cat(v) for k, v in chunks.items()}


def shard_batches(shards: list[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Index batches that never straddle a shard boundary, so each shard can be written when complete."""
    return [list(range(b, min(b + batch_size, e))) for s, e in shards for b in range(s, e, batch_size)]


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


@dataclass
class CacheStats:
    extracted: int = 0  # images run through the encoder
    reused: int = 0  # images read back from the cache
    seconds: float = 0.0
    repaired: int = 0  # damaged shards re-extracted


class FeatureCache:
    """Feature cache under `root` (default `$BENCH_HOME/cache/features`).

    `dtype`: storage dtype, `torch.float16` (default, half the disk) or `torch.float32` (for encoders
    whose features exceed fp16's range, |x| > 65504). Part of the key: both can coexist."""

    def __init__(self, root: str | Path | None = None, shard_size: int = 1024, dtype: torch.dtype = torch.float16):
        self.root = Path(root) if root else cache_root() / "features"
        self.shard_size = shard_size
        storage_dtype_name(dtype)  # validates
        self.dtype = dtype
        self.stats = CacheStats()
        self.touched: list[str] = []  # entry folders read since the last reset (the runner's manifest)

    @staticmethod
    def key(encoder: Encoder, dataset_identity: dict, transform: str, spec: FeatureSpec,
            dtype: torch.dtype = torch.float16) -> tuple[str, dict]:
        desc = {"encoder": encoder.identity(), "dataset": dataset_identity, "transform": transform,
                "spec": asdict(spec), "dtype": storage_dtype_name(dtype), "format": CACHE_FORMAT}
        digest = hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:24]
        return digest, desc

    def entry_dir(self, encoder: Encoder, dataset_identity: dict, transform: str, spec: FeatureSpec) -> Path:
        digest, _ = self.key(encoder, dataset_identity, transform, spec, self.dtype)
        return self.root / encoder.name.replace("/", "_") / digest

    # ------------------------------------------------------------------------------ reading
    def _read_index(self, folder: Path, n: int, keys: set[str]) -> dict | None:
        """The entry's index when it is usable (format, row ranges, shard records), else None."""
        index = folder / "index.json"
        if not index.exists():
            return None
        try:
            rec = read_json(index)
            bounds = [tuple(int(v) for v in b) for b in rec["bounds"]]
            parts = rec["parts"]
            ok = (rec.get("format") == CACHE_FORMAT and rec.get("n") == n and len(parts) == len(bounds) > 0
                  and bounds[0][0] == 0 and bounds[-1][1] == n
                  and all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
                  and all(p["rows"] == e - s and p["file"] == part_name(i) and len(p["sha256"]) == 64
                          and isinstance(p["bytes"], int) for i, (p, (s, e)) in enumerate(zip(parts, bounds)))
                  and set(rec.get("keys", ())) == keys and rec.get("dtype") == storage_dtype_name(self.dtype))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
            ok = False
        if not ok:
            warnings.warn(f"feature cache: {index} is damaged or does not match the entry; re-checking its shards "
                          f"and re-extracting what is missing", CacheRepairWarning, stacklevel=3)
            index.unlink(missing_ok=True)
            return None
        return {**rec, "bounds": bounds}

    def get_or_extract(self, extractor: Extractor, dataset: Dataset, *, identity: dict, transform: str,
                       spec: FeatureSpec, desc: str = "extract", progress: bool = True) -> "FeatureStore":
        t0 = time.perf_counter()
        digest, meta = self.key(extractor.encoder, identity, transform, spec, self.dtype)
        folder = self.root / extractor.encoder.name.replace("/", "_") / digest
        index = folder / "index.json"
        self.touched.append(str(folder))
        n = len(dataset)
        keys = set(spec.outputs)
        rec = self._read_index(folder, n, keys)
        if rec is not None:
            bounds, parts = rec["bounds"], {i: p for i, p in enumerate(rec["parts"])}
            damaged = {i: why for i, p in parts.items()
                       if (why := inspect_part(folder / p["file"], p["rows"], keys, self.dtype, p["bytes"]))}
        else:
            bounds = [(s, min(s + self.shard_size, n)) for s in range(0, n, self.shard_size)]
            parts, damaged = {}, {}
            for i, (s, e) in enumerate(bounds):  # shards of an unsealed (interrupted) run
                path = folder / part_name(i)
                if path.exists():
                    why = inspect_part(path, e - s, keys, self.dtype)
                    if why:
                        damaged[i] = why
                    else:
                        parts[i] = {"file": path.name, "rows": e - s, "bytes": path.stat().st_size,
                                    "sha256": file_sha256(path)}
        for i, why in sorted(damaged.items()):
            warnings.warn(f"feature cache: {folder / part_name(i)}: {why}; re-extracting it",
                          CacheRepairWarning, stacklevel=2)
            (folder / part_name(i)).unlink(missing_ok=True)
            parts.pop(i, None)
            self.stats.repaired += 1
        todo = [(i, s, e) for i, (s, e) in enumerate(bounds) if i not in parts]
        if todo or rec is None:
            index.unlink(missing_ok=True)
            folder.mkdir(parents=True, exist_ok=True)
            write_json(folder / "key.json", meta)
            self.stats.reused += n - sum(e - s for _, s, e in todo)
            parts.update(self._extract(extractor, dataset, spec, folder, todo, desc, progress))
            self._write_index(folder, n, spec, bounds, parts)
        else:
            self.stats.reused += n
        self.stats.seconds += time.perf_counter() - t0

        def repair(i: int) -> dict:
            s, e = bounds[i]
            got = self._extract(extractor, dataset, spec, folder, [(i, s, e)], f"{desc} (repair)", progress)[i]
            parts[i] = got
            self._write_index(folder, n, spec, bounds, parts)
            self.stats.repaired += 1
            return got

        return FeatureStore(folder, list(bounds), parts=[parts[i] for i in range(len(bounds))],
                            keys=tuple(o for o in OUTPUTS if o in keys), repair=repair)

    # ------------------------------------------------------------------------------ writing
    def _extract(self, extractor: Extractor, dataset: Dataset, spec: FeatureSpec, folder: Path,
                 todo: list[tuple[int, int, int]], desc: str, progress: bool) -> dict[int, dict]:
        """Extract and write the shards `todo` (i, start, end); their index records."""
        records: dict[int, dict] = {}
        if not todo:
            return records
        bar = tqdm(total=sum(e - s for _, s, e in todo), desc=desc, unit="img", disable=not progress, leave=False)
        # One loader streams every missing shard (workers start once); a shard is written as it completes.
        loader = extractor.loader(dataset, shard_batches([(s, e) for _, s, e in todo], extractor.batch_size))
        stream = extractor.batches(loader, spec, self.dtype)
        try:
            for i, s, e in todo:
                chunks: dict[str, list[torch.Tensor]] = {}
                got = 0
                while got < e - s:
                    feats = next(stream)
                    for k, v in feats.items():
                        chunks.setdefault(k, []).append(v)
                    rows = next(iter(feats.values())).shape[0]
                    got += rows
                    bar.update(rows)
                path = folder / part_name(i)
                with atomic_path(path) as tmp:
                    save_file({k: torch.cat(v).contiguous() for k, v in chunks.items()}, str(tmp))
                    records[i] = {"file": path.name, "rows": e - s, "bytes": tmp.stat().st_size,
                                  "sha256": file_sha256(tmp)}
                self.stats.extracted += e - s
        finally:
            stream.close()
            bar.close()
        return records

    def _write_index(self, folder: Path, n: int, spec: FeatureSpec, bounds, parts: dict[int, dict]) -> None:
        write_json(folder / "index.json", {
            "format": CACHE_FORMAT, "n": n, "shards": len(bounds), "bounds": [list(b) for b in bounds],
            "parts": [parts[i] for i in range(len(bounds))], "keys": [o for o in OUTPUTS if o in spec.outputs],
            "dtype": storage_dtype_name(self.dtype), "spec": asdict(spec)})


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


def default_num_workers() -> int:
    return 1 if (os.cpu_count() or 1) <= 4 else min(8, (os.cpu_count() or 2) // 2)
