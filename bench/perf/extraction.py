"""Feature extraction: the pipeline against the bare encoder forward, and the cache against a cold run."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from bench.perf import PerfRow, make_jpeg_folder, perf_case, timed


def _encoders(quick: bool):
    """vit-tiny (the demo encoder) and a ViT-B/16-sized random encoder (the size real evaluations use)."""
    from bench.encoders import load_encoder
    from bench.encoders.zoo._common import timm_encoder

    yield "vit-tiny", load_encoder("vit-tiny")
    if not quick:
        yield "vit-base (random-init)", timm_encoder("vit_base_patch16_224", "vit-base-random", None, 0, resolution=224,
                                                     mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


@perf_case("feature extraction")
def extraction_overhead(args) -> list[PerfRow]:
    from bench.data.imagefolder import ImageFolder
    from bench.data.transforms import EvalTransform
    from bench.features import Extractor, FeatureCache, FeatureSpec, default_num_workers, resolve_device

    device = resolve_device(args.device)
    n = 128 if args.quick else 256
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = make_jpeg_folder(Path(tmp) / "imgs", n)
        for label, encoder in _encoders(args.quick):
            encoder = encoder.eval().to(device)
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
            repeats = 3 if label == "vit-tiny" else 1
            t_bare = timed(bare, repeats)
            t_pipe = timed(lambda: extractor.run(dataset, spec, progress=False), repeats)
            rows.append(PerfRow(f"extraction vs bare forward ({label})", t_pipe / t_bare, 1.10,
                                f"{n / t_pipe:.0f} img/s pipeline (JPEG decode+resize+forward+fp16) vs "
                                f"{n / t_bare:.0f} img/s forward only on pre-decoded tensors"))

            def cold():
                cache = FeatureCache(Path(tempfile.mkdtemp(dir=tmp)))
                cache.get_or_extract(extractor, dataset, identity=dataset.identity(),
                                     transform=transform.describe(), spec=spec, progress=False)
                return cache

            t0 = time.perf_counter()
            cache = cold()
            t_cold = time.perf_counter() - t0
            t_warm = timed(lambda: cache.get_or_extract(extractor, dataset, identity=dataset.identity(),
                                                        transform=transform.describe(), spec=spec, progress=False))
            rows.append(PerfRow(f"cached re-run vs cold run ({label})", t_warm / t_cold, 0.10,
                                f"cold {t_cold:.2f}s, cached {t_warm * 1000:.0f} ms for {n} images"))
    return rows
