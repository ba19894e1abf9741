"""Expert demonstrations: recorded once through the suite env (256x256 renders, proprio, state,
actions), cached as one .npz per demo episode under `$BENCH_HOME/cache/robot-demos/`, and only
episodes the suite scores as successful are kept (MetaWorld: success at step 500). A demo set =
the first `n` successful episodes of layout seeds demo_seed, demo_seed + 1, ... (a manifest per
(env, count, seed) names them). Embeddings of a demo set are cached per encoder by the task."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tasks.robot.env import Expert, SuiteEnv
from tasks.robot.rollout import record_demo


@dataclass(frozen=True)
class DemoKey:
    suite: str
    env: str
    image_size: int
    shadowsize: int
    frames: bool  # False: state-only demos (a test oracle needs no renders)
    reflection: bool = True
    expert: str = ""  # a trained expert's identity (DMC SAC: steps + weights digest); "" for scripted / DAPG

    @property
    def folder(self) -> str:
        px = (f"{self.image_size}px-shadow{self.shadowsize}" + ("" if self.reflection else "-norefl")
              if self.frames else "state-only")
        return f"{self.suite}-{self.env}-{px}" + (f"-{self.expert}" if self.expert else "")


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def demo_set(root: Path, key: DemoKey, n: int, demo_seed: int, attempts: int,
             make: Callable[[], tuple[SuiteEnv, Expert]], log=None,
             min_score: float | None = None) -> tuple[list[Path], dict[str, float]]:
    """Paths of `n` successful demos (recorded on first use), and stats of the search. Successful =
    score > 0, or score >= `min_score` when given (TriFinger keeps near-complete reaches only)."""
    folder = root / key.folder
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / (f"n{n}-seed{demo_seed}.json" if min_score is None else f"n{n}-seed{demo_seed}-min{min_score:g}.json")

    def kept_score(score: float) -> bool:
        return score > 0.0 if min_score is None else score >= min_score
    if manifest.exists():
        info = json.loads(manifest.read_text())
        paths = [folder / name for name in info["demos"]]
        if all(p.exists() for p in paths):
            return paths, info["stats"]
    env, expert = None, None
    kept: list[Path] = []
    tried = 0
    try:
        for i in range(n * attempts):
            seed = demo_seed + i
            path = folder / f"demo-seed{seed}.npz"
            fail = folder / f"demo-seed{seed}.failed"
            tried += 1
            if fail.exists() and not kept_score(float(json.loads(fail.read_text())["score"])):
                continue
            if path.exists() and not kept_score(float(load_demo(path, frames=False)["score"])):
                continue
            if not path.exists():
                if env is None:
                    env, expert = make()
                demo = record_demo(env, expert, seed, render=key.frames)
                if not kept_score(float(demo["score"])):
                    fail.write_text(json.dumps({"score": float(demo["score"])}))
                    if log:
                        log.info("%s demo seed %d: expert score %.1f, not a success; skipped", key.env, seed, float(demo["score"]))
                    continue
                _atomic_savez(path, demo)
            kept.append(path)
            if len(kept) == n:
                break
    finally:
        if env is not None:
            env.close()
    if len(kept) < n:
        raise RuntimeError(f"{key.env}: only {len(kept)} of {n} expert demos succeeded in {tried} episodes "
                           f"(raise demo_attempts)")
    stats = {"expert_success": 100.0 * n / tried, "episodes_tried": float(tried)}
    manifest.write_text(json.dumps({"demos": [p.name for p in kept], "stats": stats}))
    return kept, stats


def load_demo(path: Path, frames: bool = True) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files if frames or k != "frames"}


def preprocess_frames(frames: np.ndarray, preprocess, crop_ratio: float = 224 / 256):
    """(N, H, W, 3) uint8 -> (N, 3, r, r) normalised: resize the shorter side to r / crop_ratio
    (bicubic; a no-op for 256 renders and r = 224), centre-crop r (VC-1 `vit_transforms`)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    r = int(preprocess.resolution)
    size = int(round(r / crop_ratio))
    h, w = x.shape[-2:]
    if min(h, w) != size:
        scale = size / min(h, w)
        x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode=preprocess.interpolation,
                          antialias=True, align_corners=False).clamp_(0, 1)
    h, w = x.shape[-2:]
    top, left = (h - r) // 2, (w - r) // 2
    x = x[:, :, top:top + r, left:left + r]
    mean = torch.tensor(preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.std).view(1, 3, 1, 1)
    return (x - mean) / std


__all__ = ["DemoKey", "demo_set", "load_demo", "preprocess_frames"]
