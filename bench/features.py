"""Batched feature extraction with an on-disk fp16 cache that resumes after an interruption.

A cache entry is keyed by everything that changes the numbers: encoder identity (name, weights
hash, preprocessing), dataset identity (files), split, transform and the requested outputs. It is
written in shards (`part-NNNNN.safetensors`, each atomic) and sealed by `index.json`; a run that
dies midway keeps its finished shards and the next run extracts only the rest.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from bench.encoders.base import Encoder, EncoderOutput
from bench.io import atomic_path, write_json
from bench.paths import cache_root

OUTPUTS = ("cls", "avgpool", "patches")


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
    def batches(self, loader: DataLoader, spec: FeatureSpec) -> Iterator[dict[str, torch.Tensor]]:
        """Features (fp16, CPU) batch by batch, in loader order."""
        self.encoder.to(self.device)
        for images, *_ in loader:
            with autocast_for(self.device):
                out = self.encoder(images.to(self.device, non_blocking=True), n_last_blocks=spec.n_last_blocks)
            yield {k: v.to("cpu", torch.float16) for k, v in select_features(out, spec).items()}

    def run(self, dataset: Dataset, spec: FeatureSpec, *, desc: str = "extract",
            progress: bool = True) -> dict[str, torch.Tensor]:
        """Extract features for a whole dataset (fp16, on the CPU), in dataset order."""
        chunks: dict[str, list[torch.Tensor]] = {}
        bar = tqdm(total=len(dataset), desc=desc, unit="img", disable=not progress, leave=False)
        for feats in self.batches(self.loader(dataset), spec):
            for k, v in feats.items():
                chunks.setdefault(k, []).append(v)
            bar.update(next(iter(feats.values())).shape[0])
        bar.close()
        return {k: torch.cat(v) for k, v in chunks.items()}


def shard_batches(shards: list[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Index batches that never straddle a shard boundary, so each shard can be written when complete."""
    return [list(range(b, min(b + batch_size, e))) for s, e in shards for b in range(s, e, batch_size)]


@dataclass
class CacheStats:
    extracted: int = 0  # images run through the encoder
    reused: int = 0  # images read back from the cache
    seconds: float = 0.0


class FeatureCache:
    def __init__(self, root: str | Path | None = None, shard_size: int = 1024):
        self.root = Path(root) if root else cache_root() / "features"
        self.shard_size = shard_size
        self.stats = CacheStats()
        self.touched: list[str] = []  # entry folders read since the last reset (the runner's manifest)

    @staticmethod
    def key(encoder: Encoder, dataset_identity: dict, transform: str, spec: FeatureSpec) -> tuple[str, dict]:
        desc = {"encoder": encoder.identity(), "dataset": dataset_identity, "transform": transform,
                "spec": asdict(spec), "format": 1}
        digest = hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:24]
        return digest, desc

    def entry_dir(self, encoder: Encoder, dataset_identity: dict, transform: str, spec: FeatureSpec) -> Path:
        digest, _ = self.key(encoder, dataset_identity, transform, spec)
        return self.root / encoder.name.replace("/", "_") / digest

    def get_or_extract(self, extractor: Extractor, dataset: Dataset, *, identity: dict, transform: str,
                       spec: FeatureSpec, desc: str = "extract", progress: bool = True) -> "FeatureStore":
        t0 = time.perf_counter()
        digest, meta = self.key(extractor.encoder, identity, transform, spec)
        folder = self.root / extractor.encoder.name.replace("/", "_") / digest
        index = folder / "index.json"
        self.touched.append(str(folder))
        n = len(dataset)
        shards = [(s, min(s + self.shard_size, n)) for s in range(0, n, self.shard_size)]
        if not index.exists():
            folder.mkdir(parents=True, exist_ok=True)
            write_json(folder / "key.json", meta)
            todo = [(i, s, e) for i, (s, e) in enumerate(shards) if not (folder / f"part-{i:05d}.safetensors").exists()]
            self.stats.reused += n - sum(e - s for _, s, e in todo)
            bar = tqdm(total=sum(e - s for _, s, e in todo), desc=desc, unit="img", disable=not progress, leave=False)
            # One loader streams every missing shard (workers start once); a shard is written as it completes.
            loader = extractor.loader(dataset, shard_batches([(s, e) for _, s, e in todo], extractor.batch_size))
            stream = extractor.batches(loader, spec)
            for i, s, e in todo:
                parts: dict[str, list[torch.Tensor]] = {}
                got = 0
                while got < e - s:
                    feats = next(stream)
                    for k, v in feats.items():
                        parts.setdefault(k, []).append(v)
                    got += next(iter(feats.values())).shape[0]
                    bar.update(next(iter(feats.values())).shape[0])
                with atomic_path(folder / f"part-{i:05d}.safetensors") as tmp:
                    save_file({k: torch.cat(v).contiguous() for k, v in parts.items()}, str(tmp))
                self.stats.extracted += e - s
            bar.close()
            write_json(index, {"n": n, "shards": len(shards), "spec": asdict(spec)})
        else:
            self.stats.reused += n
        self.stats.seconds += time.perf_counter() - t0
        return FeatureStore(folder, [(s, e) for s, e in shards])


class FeatureStore(Mapping[str, torch.Tensor]):
    """One cached split, read from its shards on demand: `store[key]` loads that output only (once);
    `store.rows(key, idx)` reads just the shards the rows live in, so a split larger than memory can
    still be sampled. Behaves as the dict of tensors the cache used to return."""

    def __init__(self, folder: Path, shards: list[tuple[int, int]]):
        self.folder, self.shards = Path(folder), shards
        self._full: dict[str, torch.Tensor] = {}
        if not shards:
            raise ValueError(f"empty feature entry {folder}")
        with safe_open(str(self._part(0)), framework="pt") as f:
            self._keys = tuple(f.keys())

    def _part(self, i: int) -> Path:
        return self.folder / f"part-{i:05d}.safetensors"

    @property
    def n_rows(self) -> int:
        return self.shards[-1][1]

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._keys:
            raise KeyError(key)
        if key not in self._full:
            parts = []
            for i in range(len(self.shards)):
                with safe_open(str(self._part(i)), framework="pt") as f:
                    parts.append(f.get_tensor(key))
            self._full[key] = torch.cat(parts)
        return self._full[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def rows(self, key: str, indices) -> torch.Tensor:
        """Rows `indices` of one output, in the order given, touching only their shards."""
        if key in self._full:
            return self._full[key][torch.as_tensor(indices, dtype=torch.long)]
        idx = torch.as_tensor(indices, dtype=torch.long)
        out: torch.Tensor | None = None
        for i, (s, e) in enumerate(self.shards):
            sel = ((idx >= s) & (idx < e)).nonzero().flatten()
            if not len(sel):
                continue
            with safe_open(str(self._part(i)), framework="pt") as f:
                part = f.get_tensor(key)[idx[sel] - s]
            if out is None:
                out = torch.empty((len(idx), *part.shape[1:]), dtype=part.dtype)
            out[sel] = part
        if out is None:
            raise IndexError("no rows selected")
        return out


def default_num_workers() -> int:
    return 1 if (os.cpu_count() or 1) <= 4 else min(8, (os.cpu_count() or 2) // 2)
