"""3D lifting (Lexicon3D fusion): throughput in points/s against the full per-view bicubic upsample
Lexicon3D computes (ours evaluates it at the visible pixels only, so below 1 is the saving), and the cached re-run (per-view features + lifted point features reused) against a cold run
on the synthetic ScanNet twin (tiny preset, vit-tiny)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.perf import PerfRow, perf_case, timed


def posed_scene(n_points: int, n_views: int, grid_chw: tuple[int, int, int], spacing: float = 0.05, seed: int = 0):
    """Points in front of cameras on a line, depth maps that see them, random (C, h, w) patch grids."""
    from bench.data.scannet import DEFAULT_K
    from bench.data.scannet_lift import project

    rng = np.random.default_rng(seed)
    pts = rng.uniform([-1.5, -1.0, 2.0], [1.5, 1.0, 4.0], (n_points, 3))
    views = []
    for v in range(n_views):
        pose = np.eye(4)
        pose[0, 3] = spacing * v
        r, c, m = project(pts, pose, DEFAULT_K, None)
        depth = np.zeros((240, 320), np.float32)
        depth[r[m], c[m]] = (pts - pose[:3, 3])[m, 2]
        views.append((pose, depth, torch.randn(*grid_chw, generator=torch.Generator().manual_seed(v))))
    return pts, views, DEFAULT_K


@perf_case("3d lifting")
def lifting(args) -> list[PerfRow]:
    from bench.data.scannet_lift import LiftParams, lift_scene, upsample

    n, v, dim = (20_000, 8, 192) if args.quick else (100_000, 16, 384)
    pts, views, K = posed_scene(n, v, (dim, 15, 20))
    t_lift = timed(lambda: lift_scene(pts, views, K, LiftParams()), 2)
    t_up = timed(lambda: [upsample(g) for _, _, g in views], 2)
    rows = [PerfRow("3d lifting vs the full bicubic upsample", t_lift / t_up, 2.0,
                    f"{n * v / t_lift:,.0f} point-views/s, {n / t_lift:,.0f} points/s per scene "
                    f"({n} points, {v} views, C={dim})")]
    rows.append(_cached_rerun(args))
    return rows


def _cached_rerun(args) -> PerfRow:
    from bench.context import EvalContext
    from bench.data import scannet as S
    from bench.data.scannet_lift import LiftParams, SceneLifter
    from bench.data.synth.scannet3d import ensure3d
    from bench.encoders import load_encoder
    from bench.features import FeatureCache, resolve_device

    with tempfile.TemporaryDirectory() as tmp:
        root = ensure3d("tiny", Path(tmp) / "synth-tiny" / "scannet3d", progress=False)
        enc = load_encoder("vit-tiny")
        ids = [(s, sp) for sp in ("train", "val") for s in S.split_scenes(root, sp)]
        views = {s: S.scene_views(root, s) for s, _ in ids}
        K = S.intrinsics(root)

        def run() -> float:
            ctx = EvalContext(enc, resolve_device(args.device), 0, FeatureCache(Path(tmp) / "cache" / "features"),
                              root=root, progress=False)
            t0 = time.perf_counter()
            lifter = SceneLifter(ctx, root, K, views, LiftParams())
            for s, sp in ids:
                pts = S.load_points(root, sp, s)
                lifter.get(s, pts.coords, root / "scannet_3d" / sp / f"{s}_vh_clean_2.pth")
            return time.perf_counter() - t0, lifter.stats

        t_cold, cold = run()
        t_warm, warm = run()
    return PerfRow("3d cached re-run vs cold lift (vit-tiny)", t_warm / t_cold, 0.25,
                   f"cold {t_cold:.2f}s ({cold.lifted} scenes lifted, {cold.points / max(cold.seconds, 1e-9):,.0f} "
                   f"points/s lifting), cached {t_warm * 1000:.0f} ms ({warm.reused} reused)")
