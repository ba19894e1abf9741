"""`bench perf`: speed of the benchmark machinery, printed as ratios against targets.

Each case returns rows (name, measured ratio, target, note). Timings are medians of repeats; run on
an otherwise idle machine. Cases register with `@perf_case` (later probes add their own).
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


@perf_case("feature extraction")
def extraction_overhead(args) -> list[PerfRow]:
    from bench.data.imagefolder import ImageFolder
    from bench.data.transforms import EvalTransform
    from bench.encoders import load_encoder
    from bench.features import Extractor, FeatureCache, FeatureSpec, default_num_workers, resolve_device

    device = resolve_device(args.device)
    n = 128 if args.quick else 512
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = make_jpeg_folder(Path(tmp) / "imgs", n)
        encoder = load_encoder("vit-tiny").to(device)
        transform = EvalTransform(encoder.preprocess)
        dataset = ImageFolder(root, "train", transform)
        batch = 64
        batches = [torch.stack([dataset[j][0] for j in range(i, min(i + batch, n))]) for i in range(0, n, batch)]

        @torch.inference_mode()
        def bare():
            for b in batches:
                encoder(b.to(device), n_last_blocks=1)
            if device.type == "cuda":
                torch.cuda.synchronize()

        extractor = Extractor(encoder, device=device, batch_size=batch, num_workers=default_num_workers())
        spec = FeatureSpec(("cls",), 1)
        bare()  # warm-up
        t_bare = timed(bare)
        t_pipe = timed(lambda: extractor.run(dataset, spec, progress=False))
        rows.append(PerfRow("extraction vs bare forward (vit-tiny)", t_pipe / t_bare, 1.10,
                            f"{n / t_pipe:.0f} img/s pipeline (decode+resize+forward+fp16) vs "
                            f"{n / t_bare:.0f} img/s forward only on pre-decoded tensors"))

        def cold():
            cache = FeatureCache(Path(tempfile.mkdtemp(dir=tmp)))
            cache.get_or_extract(extractor, dataset, identity=dataset.identity(), transform=transform.describe(),
                                 spec=spec, progress=False)
            return cache

        t0 = time.perf_counter()
        cache = cold()
        t_cold = time.perf_counter() - t0
        t_warm = timed(lambda: cache.get_or_extract(extractor, dataset, identity=dataset.identity(),
                                                    transform=transform.describe(), spec=spec, progress=False))
        rows.append(PerfRow("cached re-run vs cold run", t_warm / t_cold, 0.10,
                            f"cold {t_cold:.2f}s, cached {t_warm * 1000:.0f} ms for {n} images"))
    return rows


def main(args) -> int:
    torch.set_num_threads(torch.get_num_threads())
    print(f"bench perf ({'quick' if args.quick else 'full'}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device})")
    print(f"{'case':48} {'ratio':>8} {'target':>8}  verdict  note")
    misses = 0
    for name, fn in PERF_CASES:
        for row in fn(args):
            target = f"<{row.target:.2f}" if row.target is not None else "-"
            print(f"{row.name:48} {row.ratio:8.3f} {target:>8}  {row.verdict:7}  {row.note}", flush=True)
            misses += row.verdict == "MISS"
    print(f"\n{misses} target(s) missed." if misses else "\nall targets met.")
    return 0
