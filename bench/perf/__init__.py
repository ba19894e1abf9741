"""`bench perf`: speed of the benchmark machinery, printed as ratios against targets.

Each case returns rows (name, measured ratio, target, note). Timings are medians of repeats; run on
an otherwise idle machine. A case is a function decorated with `@perf_case` in any module of this
package (one file per area: extraction, dense heads, linear bank, retrieval, trainer).
"""
from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bench.registry import import_submodules

PERF_CASES: list[tuple[str, Callable]] = []


def perf_case(name: str):
    def deco(fn):
        PERF_CASES.append((name, fn))
        return fn
    return deco


@dataclass
class PerfRow:
    name: str
    ratio: float
    target: float | None  # ratio must stay below this; None = report only
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "info"
        return "ok" if self.ratio < self.target else "MISS"


def timed(fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_jpeg_folder(root: Path, n: int, size=(500, 375), classes: int = 4, seed: int = 0) -> Path:
    """ImageNet-sized JPEGs of smooth random texture (decode cost like real photos)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        folder = root / "train" / f"c{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        low = rng.integers(0, 255, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
        img = Image.fromarray(low).resize(size, Image.BICUBIC)
        img.save(folder / f"{i:05d}.JPEG", quality=90)
    return root


def main(args) -> int:
    torch.set_num_threads(torch.get_num_threads())
    print(f"bench perf ({'quick' if args.quick else 'full'}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device})")
    print(f"{'case':48} {'ratio':>8} {'target':>8}  verdict  note")
    import_submodules("bench.perf")
    only = set(getattr(args, "only", None) or [])
    misses = 0
    for name, fn in PERF_CASES:
        if only and name not in only:
            continue
        for row in fn(args):
            target = f"<{row.target:.2f}" if row.target is not None else "-"
            print(f"{row.name:48} {row.ratio:8.3f} {target:>8}  {row.verdict:7}  {row.note}", flush=True)
            misses += row.verdict == "MISS"
    print(f"\n{misses} target(s) missed." if misses else "\nall targets met.")
    return 0
