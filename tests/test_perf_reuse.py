"""Work `bench run --tasks all` no longer does twice, pinned to give the results of the path that did:
3D lifting evaluates the bicubic upsample at the gathered pixels only (bit-identical to upsampling the
whole map), the segmentation heads of a run share one cached train extraction, and ground truth /
label maps / baselines that several tasks derive identically are computed once per run (the run memo
on the run's FeatureCache). Each test also counts the work that is skipped."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.test_depth import _png16, write_nyu
from tests.test_segmentation import SYNTH_CLASSES, write_ade


# ------------------------------------------------------------------------------ 3D lifting
def _views(n_views: int, grid_hw: tuple[int, int], dim: int, seed: int = 0):
    """The perf case's posed scene with fp16 patch grids laid out as the feature store gives them
    ((h, w, C) permuted to (C, h, w))."""
    from bench.perf.lifting import posed_scene

    pts, views, K = posed_scene(3000, n_views, (*grid_hw, dim), spacing=0.1, seed=seed)
    return pts, [(pose, depth, grid.mul(3).half().permute(2, 0, 1)) for pose, depth, grid in views], K


@pytest.mark.parametrize("grid_hw", [(15, 20), (17, 23), (16, 22)])  # ViT /16 at 240x320; DINOv2 /14 at 238x322
def test_lifting_at_the_gathered_pixels_equals_the_full_upsample(grid_hw, monkeypatch):
    import bench.data.scannet_lift as L

    pts, views, K = _views(4, grid_hw, 24)
    calls = []
    real = L.upsample
    monkeypatch.setattr(L, "upsample", lambda *a, **k: calls.append(1) or real(*a, **k))
    L._EXACT.clear()
    feat, count = L.lift_scene(pts, views, K)
    exact = L._EXACT[(24, *grid_hw, 240, 320)]
    monkeypatch.setitem(L._EXACT, (24, *grid_hw, 240, 320), False)  # the full upsample of every view
    ref_feat, ref_count = L.lift_scene(pts, views, K)
    assert count.sum() > 1000 and torch.equal(count, ref_count)
    assert torch.equal(feat, ref_feat)  # bit for bit, on any machine (a kernel it cannot reproduce: full path)
    if not exact:
        pytest.skip("this torch build's bicubic kernel is not reproduced at the pixels: lifting upsamples in full")
    assert len(calls) == 1 + len(views)  # gathered path: one full upsample (the check) instead of one per view
    rows, cols = torch.tensor([10, 57, 229]), torch.tensor([10, 200, 309])
    grid = views[0][2]
    assert torch.equal(L.gather_upsampled(grid, rows, cols), real(grid)[:, rows, cols].T)


def test_bilinear_lifting_keeps_the_full_upsample():
    import bench.data.scannet_lift as L

    pts, views, K = _views(2, (15, 20), 8)
    params = L.LiftParams(upsample="bilinear")
    feat, _ = L.lift_scene(pts, views, K, params)
    total = torch.zeros_like(feat)
    seen = torch.zeros(len(pts))
    for pose, depth, grid in views:
        r, c, m = L.project(pts, pose, K, depth)
        idx = torch.from_numpy(np.flatnonzero(m))
        total[idx] += L.upsample(grid, "bilinear")[:, torch.from_numpy(r[m]), torch.from_numpy(c[m])].T
        seen[idx] += 1
    assert torch.equal(feat, total / seen.clamp_min(1e-5)[:, None])


# ----------------------------------------------------------------------------- segmentation
def _seg(name, enc, root, cache, tmp_path, **overrides):
    """One task as the runner runs it (global seeds reset first: dropout draws from them)."""
    from bench.config import resolve
    from bench.context import EvalContext
    from bench.seeding import seed_everything
    from tasks import get_task

    seed_everything(0)
    task = get_task(name)
    cfg = resolve(task.default_config(), {"fast_iters": 20, "fast_batch": 8, **overrides})
    ctx = EvalContext(enc, torch.device("cpu"), 0, cache, root=root, batch_size=8, progress=False,
                      artifacts_dir=tmp_path / "art")
    return task.run(ctx, cfg), ctx


def test_segmentation_heads_share_one_train_extraction_and_the_run_memo(tmp_path, monkeypatch):
    import tasks.segmentation.probe as probe
    from bench.features import FeatureCache
    from bench.run_memo import RunMemo
    from tests.conftest import CountingEncoder

    root = write_ade(tmp_path / "ade", n_train=12, n_val=3, size=(48, 64), classes_json=SYNTH_CLASSES)
    baselines = []
    real_baseline = probe.majority_baseline
    monkeypatch.setattr(probe, "majority_baseline", lambda *a, **k: baselines.append(1) or real_baseline(*a, **k))

    def run_both(cache, blocks):
        monkeypatch.setattr(probe, "CACHED_BLOCKS", blocks)
        enc = CountingEncoder(dim=16, patch=8, resolution=32)
        lin, ctx = _seg("synth-seg-linear", enc, root, cache, tmp_path)
        seen = enc.images_seen
        ms, _ = _seg("synth-seg-ms", enc, root, cache, tmp_path)
        return lin, ms, seen, enc.images_seen - seen, ctx.params

    lin, ms, seen_lin, seen_ms, params = run_both(FeatureCache(tmp_path / "shared"), 4)
    assert len(baselines) == 1  # the majority baseline over the val annotations: once for both heads
    uncut = FeatureCache(tmp_path / "uncut")
    uncut.memo = RunMemo(max_bytes=0)  # keeps nothing: every task computes its own targets and baseline
    lin0, ms0, seen_lin0, seen_ms0, params0 = run_both(uncut, 1)  # the linear head caches its 1 block
    assert len(baselines) == 3
    for a, b in ((lin, lin0), (ms, ms0)):
        assert a.metrics == b.metrics and a.breakdown == b.breakdown
        assert all(np.array_equal(a.items[k].values, b.items[k].values) for k in a.items)
    assert params["fast.holdout_mIoU"] == params0["fast.holdout_mIoU"] and params["fast.cached_blocks"] == 4
    assert seen_lin == seen_lin0  # the same forwards for the linear head (all blocks are computed anyway)
    assert seen_ms0 - seen_ms == 12  # the +ms head reuses the 12 train images' 4-block entry


# ------------------------------------------------------------------------------------ depth
def test_depth_ground_truth_is_read_once_per_run(tmp_path, monkeypatch):
    from bench.data.nyu import NYUDepth
    from bench.features import FeatureCache
    from bench.run_memo import RunMemo
    from tests.conftest import CountingEncoder

    root = write_nyu(tmp_path / "nyu")
    rng = np.random.default_rng(0)
    for path in sorted(root.rglob("sync_depth_*.png")):  # every pixel valid, 0.5-9.5 m
        _png16(path, rng.integers(500, 9500, (48, 64)))
    reads = []
    real = NYUDepth.raw_depth
    monkeypatch.setattr(NYUDepth, "raw_depth", lambda self, i: reads.append(i) or real(self, i))

    def run_both(cache):
        out, counts = [], []
        for name in ("synth-depth-linear", "synth-depth-dpt"):
            before = len(reads)
            result, _ = _depth(name, CountingEncoder(dim=8, patch=8, resolution=32), root, cache)
            out.append(result)
            counts.append(len(reads) - before)
        return out, counts

    (lin, dpt), counts = run_both(FeatureCache(tmp_path / "shared"))
    assert counts == [4 + 2, 0]  # 4 train + 2 test maps read by the first probe, none by the second
    uncut = FeatureCache(tmp_path / "uncut")
    uncut.memo = RunMemo(max_bytes=0)
    (lin0, dpt0), counts0 = run_both(uncut)
    assert counts0 == [6, 6]
    for a, b in ((lin, lin0), (dpt, dpt0)):
        assert a.metrics == b.metrics
        assert all(np.array_equal(a.items[k].values, b.items[k].values, equal_nan=True) for k in a.items)


def _depth(name, enc, root, cache):
    from bench.config import resolve
    from bench.context import EvalContext
    from bench.seeding import seed_everything
    from tasks import get_task

    seed_everything(0)
    task = get_task(name)
    cfg = resolve(task.default_config(), {"train.iterations": 3, "train.batch_size": 2})
    ctx = EvalContext(enc, torch.device("cpu"), 0, cache, root=root, batch_size=4, progress=False)
    result = task.run(ctx, cfg)
    result.validate(task.meta)
    return result, ctx
