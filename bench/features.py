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
import contextvars
import hashlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from bench import timing
from bench.encoders.base import Encoder, EncoderOutput
from bench.errors import NonFiniteFeaturesError
from bench.feature_store import (STORAGE_DTYPES, CacheRepairWarning, FeatureStore, file_sha256, inspect_part,
                                 part_name)
from bench.io import atomic_path, read_json, write_json
from bench.paths import cache_root
from bench.run_memo import RunMemo

OUTPUTS = ("cls", "avgpool", "patches")
CACHE_FORMAT = 2


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


IN_PROCESS_DECODE_CORES = 2  # measured there (docs/benchmarks.md); larger machines keep their loader workers

# which (images, transform) an extraction forwards: the tasks-all perf case counts each once (its floor)
timing_key: contextvars.ContextVar[str] = contextvars.ContextVar("timing_key", default="direct")


@dataclass
class Extractor:
    encoder: Encoder
    device: torch.device = field(default_factory=lambda: resolve_device("auto"))
    batch_size: int = 64
    num_workers: int = 1

    def loader_workers(self) -> int:
        """Loader worker processes for this extraction: `num_workers`, except on a small CPU machine
        whose every core runs a forward thread. There no core is idle to hide decoding on; a worker
        only preempts one forward thread and the others wait for it at the next OpenMP barrier
        (vit-tiny on 2 cores: 1.22x a bare forward with a worker, 1.07x decoding between batches in
        this process). Many cores forward so fast that serial decoding would dominate: they keep
        their workers. Same batches, same order, same numbers either way."""
        cores = os.cpu_count() or 1
        if self.device.type == "cpu" and cores <= IN_PROCESS_DECODE_CORES and torch.get_num_threads() >= cores:
            return 0
        return self.num_workers

    def loader(self, dataset: Dataset, batch_sampler=None) -> DataLoader:
        kwargs = dict(batch_sampler=batch_sampler) if batch_sampler is not None else \
            dict(batch_size=self.batch_size, shuffle=False)
        workers = self.loader_workers()
        return DataLoader(dataset, num_workers=workers, pin_memory=self.device.type == "cuda",
                          prefetch_factor=4 if workers else None, **kwargs)

    @torch.inference_mode()
    def batches(self, loader: DataLoader, spec: FeatureSpec, dtype: torch.dtype = torch.float16,
                check_finite: bool = True) -> Iterator[dict[str, torch.Tensor]]:
        """Features (`dtype`, CPU) batch by batch, in loader order. With `check_finite`, NaN / inf
        (from the encoder, or by overflowing `dtype`) raise `NonFiniteFeaturesError`."""
        self.encoder.to(self.device)
        it = iter(loader)
        while True:
            t0 = time.perf_counter()
            try:
                images, *_ = next(it)
            except StopIteration:
                return
            timing.add("decode", time.perf_counter() - t0)  # what the forward waited for the loader
            with timing.phase("forward"), autocast_for(self.device):
                out = self.encoder(images.to(self.device, non_blocking=True), n_last_blocks=spec.n_last_blocks)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
            timing.count(f"rows|{timing_key.get()}|{images.shape[-2]}x{images.shape[-1]}", images.shape[0])
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


def loader_seed_draw() -> None:
    """Draw from the global torch generator what an extraction's DataLoader draws when it starts (one
    int64, its base seed). A task whose later work draws from the global generator (dropout) calls it
    after a read served without extraction, so its numbers do not depend on whether this task or an
    earlier one extracted the entry."""
    torch.empty((), dtype=torch.int64).random_()


def shard_batches(shards: list[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Index batches that never straddle a shard boundary, so each shard can be written when complete."""
    return [list(range(b, min(b + batch_size, e))) for s, e in shards for b in range(s, e, batch_size)]


@dataclass
class CacheStats:
    extracted: int = 0  # images run through the encoder
    reused: int = 0  # images read back from the cache
    seconds: float = 0.0
    repaired: int = 0  # damaged shards re-extracted


class FeatureCache:
    """Feature cache under `root` (default `$BENCH_HOME/cache/features`).

    `dtype`: storage dtype, `torch.float16` (default, half the disk) or `torch.float32` (for encoders
    whose features exceed fp16's range, |x| > 65504). Part of the key: both can coexist.
    One instance serves a whole run, so it also carries the run's `memo` (`bench.run_memo`)."""

    def __init__(self, root: str | Path | None = None, shard_size: int = 1024, dtype: torch.dtype = torch.float16):
        self.root = Path(root) if root else cache_root() / "features"
        self.shard_size = shard_size
        storage_dtype_name(dtype)  # validates
        self.dtype = dtype
        self.stats = CacheStats()
        self.touched: list[str] = []  # entry folders read since the last reset (the runner's manifest)
        self.memo = RunMemo()  # targets / baselines several tasks of this run derive identically

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
        timing_key.set(hashlib.sha256(json.dumps([identity, transform], sort_keys=True, default=str).encode()).hexdigest()[:16]
                       + "." + digest[:8])
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


def default_num_workers() -> int:
    return 1 if (os.cpu_count() or 1) <= 4 else min(8, (os.cpu_count() or 2) // 2)
