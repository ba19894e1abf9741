"""Dense probe heads: a whole learning-rate x layer grid trained together on one pass over cached
features (DINOv2's bank of heads) against a single configuration on the same features."""
from __future__ import annotations

import torch

from bench.perf import PerfRow, perf_case, timed

# The measured shapes: the synthetic linear twin's batch, target stride and decoding (tasks/depth/config.py
# SYNTH["linear"]) with the real tasks' 4 learning rates x {last, last4}. Stated here: perf measures the
# machinery, it does not import tasks.
SYNTH_BATCH, SYNTH_TARGET_STRIDE, SYNTH_LINEAR_UPSAMPLE = 4, 4, 1
REAL_LRS = (1e-4, 3e-4, 1e-3, 3e-3)


@perf_case("dense head grid")
def dense_head_grid(args) -> list[PerfRow]:
    from bench.features import resolve_device
    from bench.runtime import head_threads
    from heads.depth import BinSpec, DepthFeatures, LinearDepthHeads, TrainConfig, train_bank

    device = resolve_device(args.device)
    g = torch.Generator().manual_seed(0)
    n, (h, w), dim = 64, (14, 19), 192  # vit-tiny features of a 224x304 NYU frame
    stride, upsample = SYNTH_TARGET_STRIDE, SYNTH_LINEAR_UPSAMPLE
    data = DepthFeatures(torch.randn(n, 4, h, w, dim, generator=g).half(), torch.randn(n, 4, dim, generator=g).half(),
                         torch.randint(500, 9500, (n, 224 // stride, 304 // stride), generator=g, dtype=torch.int32),
                         1000.0)
    iters = 10 if args.quick else 40
    cfg = TrainConfig(iterations=iters, batch_size=SYNTH_BATCH, target_stride=stride)
    bins = BinSpec(256, 1e-3, 10.0)
    lrs = list(REAL_LRS)

    def make(n_layers: int, k: int):
        return LinearDepthHeads(dim, n_layers, True, bins, upsample=upsample, k=k)

    def grid():
        train_bank([make(1, len(lrs)), make(4, len(lrs))], [lrs, lrs], data, cfg, device=device)

    def one(n_layers: int = 4):
        train_bank([make(n_layers, 1)], [[1e-3]], data, cfg, device=device)

    def grid_matmuls():  # the grid's irreducible work: logits and weight gradients, fp32, every member
        for c in (dim, 4 * dim):
            x = torch.randn(n_rows, c, device=device)
            weights = torch.randn(len(lrs) * bins.n_bins, c, device=device)
            for _ in range(iters):
                (x @ weights.T).T @ x

    n_rows = cfg.batch_size * h * w
    with head_threads(device) as threads:
        one()  # warm-up
        t_one = timed(one)
        t_last = timed(lambda: one(1))
        t_grid = timed(grid)
        t_mm = timed(grid_matmuls)
    n_heads = 2 * len(lrs)
    t_separate = len(lrs) * (t_one + t_last)
    where = f"batch {cfg.batch_size}, {device.type}{f' x{threads} thread(s)' if threads else ''}"
    return [
        PerfRow(f"depth linear grid ({len(lrs)} lrs x last/last4) vs one", t_grid / t_one, 2.0,
                f"{n_heads} heads {t_grid / iters * 1000:.0f} ms/it vs 1 last4 head {t_one / iters * 1000:.0f} ms/it; "
                f"{where}"),
        PerfRow("depth linear grid vs its heads run one by one", t_grid / t_separate, None,
                f"{n_heads} separate runs {t_separate / iters * 1000:.0f} ms/it in all"),
        PerfRow("depth grid's fp32 matmuls alone vs one last4 head", t_mm / t_one, None,
                f"logits + weight gradients of the {n_heads} heads {t_mm / iters * 1000:.0f} ms/it (5x one last4 "
                f"head's FLOPs): the grid's compute floor"),
    ]
