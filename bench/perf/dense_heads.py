"""Dense probe heads: a whole learning-rate x layer grid trained together on one pass over cached
features (DINOv2's bank of heads) against a single configuration on the same features."""
from __future__ import annotations

import torch

from bench.perf import PerfRow, perf_case, timed


@perf_case("dense head grid")
def dense_head_grid(args) -> list[PerfRow]:
    from bench.features import resolve_device
    from heads.depth import BinSpec, DepthFeatures, LinearDepthHeads, TrainConfig, train_bank
    from tasks.depth import CONFIGS, head_threads

    device = resolve_device(args.device)
    g = torch.Generator().manual_seed(0)
    n, (h, w), dim = 64, (14, 19), 192  # vit-tiny features of a 224x304 NYU frame
    synth = CONFIGS["synth-depth-linear"]
    stride = synth.train.target_stride
    data = DepthFeatures(torch.randn(n, 4, h, w, dim, generator=g).half(), torch.randn(n, 4, dim, generator=g).half(),
                         torch.randint(500, 9500, (n, 224 // stride, 304 // stride), generator=g, dtype=torch.int32),
                         1000.0)
    iters = 10 if args.quick else 40
    cfg = TrainConfig(iterations=iters, batch_size=synth.train.batch_size, target_stride=stride)
    bins = BinSpec(256, 1e-3, 10.0)
    lrs = list(CONFIGS["nyud-depth-linear"].lrs)

    def make(n_layers: int, k: int):
        return LinearDepthHeads(dim, n_layers, True, bins, upsample=synth.linear_upsample, k=k)

    def grid():
        train_bank([make(1, len(lrs)), make(4, len(lrs))], [lrs, lrs], data, cfg, device=device)

    def one(n_layers: int = 4):
        train_bank([make(n_layers, 1)], [[1e-3]], data, cfg, device=device)

    with head_threads(device) as threads:
        one()  # warm-up
        t_one = timed(one)
        t_last = timed(lambda: one(1))
        t_grid = timed(grid)
    n_heads = 2 * len(lrs)
    t_separate = len(lrs) * (t_one + t_last)
    where = f"batch {cfg.batch_size}, {device.type}{f' x{threads} thread(s)' if threads else ''}"
    return [
        PerfRow(f"depth linear grid ({len(lrs)} lrs x last/last4) vs one", t_grid / t_one, 2.0,
                f"{n_heads} heads {t_grid / iters * 1000:.0f} ms/it vs 1 last4 head {t_one / iters * 1000:.0f} ms/it; "
                f"{where}"),
        PerfRow("depth linear grid vs its heads run one by one", t_grid / t_separate, None,
                f"{n_heads} separate runs {t_separate / iters * 1000:.0f} ms/it in all"),
    ]
