from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import torch
from torch import nn

# Tests never touch the user's work directory or a remote tracking server.
os.environ.setdefault("BENCH_SYNTH_PRESET", "tiny")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bench.encoders.base import BlockOutput, Encoder, EncoderOutput, Preprocess  # noqa: E402


# The fewest SpatialBoost training steps that still run all three stages on the tiny recipe
# (tests that need a `vit-tiny+sb` checkpoint, not a good one: diagnostics, sweeps, sb-train jobs).
SB_FAST = ["max_length=384", "eval_samples=0", "threads=1", "train_resolution=64", "answer_views=1",
           "stage1.max_steps=1", "stage2.max_steps=1", "stage1.micro_batch=4", "stage1.global_batch=4",
           "stage2.micro_batch=4", "stage2.global_batch=4",
           "stage3.micro_batch=2", "stage3.global_batch=2", "stage3.max_steps=4", "stage3.lr=1e-3"]


@contextmanager
def module_home(tmp_path_factory, name: str, **env: str) -> Iterator[Path]:
    """A BENCH_HOME shared by the tests of one module (a module-scoped `shared_home` fixture yields
    it; `isolated_home` then leaves them alone): no tracking server, no BENCH_DATA, `env` set."""
    home = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_HOME", str(home))
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("BENCH_DATA", raising=False)
        yield home


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch, request):
    """Each test module gets its own BENCH_HOME (data, cache, MLflow store) unless it shares one."""
    if "shared_home" in request.fixturenames:
        return
    home = tmp_path_factory.mktemp("bench_home")
    monkeypatch.setenv("BENCH_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("BENCH_DATA", raising=False)


@pytest.fixture
def one_thread(request):
    """Tiny tensors: one intra-op thread avoids OpenMP contention on a shared 2-core machine
    (50 ms -> 4 ms per bank step); slow end-to-end tests keep the default."""
    if request.node.get_closest_marker("slow"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class CountingEncoder(Encoder):
    """A deterministic toy encoder (mean colour per patch -> linear map) that counts its forwards."""

    backend = "test"

    def __init__(self, dim: int = 8, patch: int = 8, resolution: int = 32, blocks: int = 4):
        super().__init__()
        self.name, self.embed_dim, self.num_blocks = "counting", dim, blocks
        self.preprocess = Preprocess(resolution, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), patch)
        self.weights_id, self.random_init = "test-fixed", True
        g = torch.Generator().manual_seed(0)
        self.proj = nn.Parameter(torch.randn(blocks, 3, dim, generator=g))
        self.images_seen = 0

    def _forward(self, images, n_last_blocks):
        self.images_seen += images.shape[0]
        p = self.preprocess.patch_size
        pooled = nn.functional.avg_pool2d(images, p).permute(0, 2, 3, 1)  # (B, h, w, 3)
        blocks = []
        for i in range(self.num_blocks - n_last_blocks, self.num_blocks):
            patches = torch.tanh(pooled @ self.proj[i])
            blocks.append(BlockOutput(cls=patches.mean(dim=(1, 2)), patches=patches))
        return EncoderOutput(cls=blocks[-1].cls, patches=blocks[-1].patches, blocks=blocks)


@pytest.fixture
def counting_encoder():
    return CountingEncoder()


def write_image_folder(root: Path, per_class: dict[str, int], size=(40, 40), seed=0) -> Path:
    """ImageFolder of solid-ish colour images: each class its own colour, plus noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    palette = [(220, 30, 30), (30, 200, 40), (30, 40, 220), (230, 220, 30), (200, 40, 200)]
    for split, scale in (("train", 1), ("val", 1)):
        for ci, (cls, n) in enumerate(per_class.items()):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n * scale):
                arr = np.clip(np.array(palette[ci % len(palette)]) + rng.normal(0, 25, (*size[::-1], 3)), 0, 255)
                Image.fromarray(arr.astype("uint8")).save(folder / f"{split}_{i:04d}.JPEG", quality=95)
    return root


def run_task(name: str, encoder, root=None, *, artifacts_dir=None, batch_size: int = 32, seed: int = 0,
             **overrides):
    """Run one registered task's behaviour directly (no tracking): `(TaskResult, EvalContext)`.
    `overrides` are config keys (dotted for nested fields), exactly as `--set NAME.key=value`."""
    import tempfile

    from bench.config import resolve
    from bench.context import EvalContext
    from bench.features import FeatureCache
    from tasks import get_task

    task = get_task(name)
    if root is None and task.meta.data is not None:
        root = task.meta.data.prepare(progress=False)
    cfg = resolve(task.default_config(), overrides, where=f"config of {name}")
    ctx = EvalContext(encoder, torch.device("cpu"), seed, FeatureCache(), root=Path(root) if root else None,
                      batch_size=batch_size, num_workers=0, progress=False, artifacts_dir=artifacts_dir,
                      state_root=Path(tempfile.mkdtemp(prefix="bench-state-")))
    result = task.run(ctx, cfg)
    result.validate(task.meta)
    return result, ctx
