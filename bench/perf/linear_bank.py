"""The linear grid (52 heads) as one bank against a single head and against 52 separately run heads.

Synthetic fp16 features of ImageNet size per step (last 4 blocks' CLS + avg-pooled patches,
D=768, 1000 classes, batch 1024; `--quick`: D=384, 100 classes, batch 256). Every variant reads
its batches through the same `CachedFeatures` gather, so the rows compare the heads' own cost.
The bank does 156/1 (vs the last-CLS head) or 156/5 (vs the 4-block + avgpool head) times the
matmul FLOPs of a single head by construction (sum of the 52 heads' input widths, in units of D):
where the step is compute-bound (CPU) that FLOP ratio is the floor, and where per-step overheads
dominate (GPU) the bank approaches the cost of one head. The bank's step is fused (no autograd: see
`LinearBank.train_step`); its autograd reference is timed beside it.
"""
from __future__ import annotations

import torch

from bench.perf import PerfRow, perf_case, timed


@perf_case("linear bank")
def linear_bank(args) -> list[PerfRow]:
    from bench.features import resolve_device
    from heads.linear import CachedFeatures, HeadSpec, LinearBank, head_grid

    device = resolve_device(args.device)
    dim, classes, batch, steps = (384, 100, 256, 4) if args.quick else (768, 1000, 1024, 2)
    n = batch * (steps + 1)
    g = torch.Generator().manual_seed(0)
    feats = {"cls": torch.randn(n, 4, dim, generator=g).half(), "avgpool": torch.randn(n, 4, dim, generator=g).half()}
    labels = torch.randint(0, classes, (n,), generator=g)
    data = CachedFeatures(feats, labels, 4, True, device)

    def step_time(bank: LinearBank, reference: bool = False) -> float:
        bank.to(device)
        step = bank.train_step_reference if reference else bank.train_step

        def run():
            for _, (cls, avg, y) in zip(range(steps), data.epoch(batch, 0, 0)):
                step(cls, avg, y, 1.0)
            if device.type == "cuda":
                torch.cuda.synchronize()

        run()  # warm-up (allocations, momentum buffers)
        return timed(run, repeats=2 if not args.quick else 3) / steps

    specs = head_grid()
    t_bank = step_time(LinearBank(specs, dim, classes))
    t_autograd = step_time(LinearBank(specs, dim, classes), reference=True)
    singles = {key: step_time(LinearBank([HeadSpec(key[0], key[1], 1e-3)], dim, classes))
               for key in [(1, False), (1, True), (4, False), (4, True)]}
    t_separate = sum(13 * t for t in singles.values())  # 13 learning rates per feature configuration
    width = sum(s.n_blocks + int(s.avgpool) for s in specs)
    where = f"{device.type}, {torch.get_num_threads()} threads, D={dim} C={classes} batch={batch}"
    return [
        PerfRow("linear bank (52 heads) vs one head (last CLS)", t_bank / singles[(1, False)], None,
                f"{t_bank * 1000:.0f} vs {singles[(1, False)] * 1000:.0f} ms/step; FLOP ratio {width}x (the floor where "
                f"compute-bound); {where}"),
        PerfRow("linear bank vs one 4-block+avgpool head", t_bank / singles[(4, True)], None,
                f"{t_bank * 1000:.0f} vs {singles[(4, True)] * 1000:.0f} ms/step; FLOP ratio {width / 5:.1f}x"),
        PerfRow("linear bank vs 52 separately trained heads", t_bank / t_separate, 1.0,
                f"{t_bank * 1000:.0f} vs {t_separate * 1000:.0f} ms/step (13 x each single-head configuration)"),
        PerfRow("linear bank fused step vs autograd step", t_bank / t_autograd, None,
                f"{t_bank * 1000:.0f} vs {t_autograd * 1000:.0f} ms/step (`train_step_reference`, the pre-fusion step)"),
    ]


@perf_case("linear grid end to end")
def linear_grid_end_to_end(args) -> list[PerfRow]:
    """The DINOv2 trick as it is used: one backbone forward per batch feeds every head (the augmented
    protocol, where each epoch runs the encoder). Grid = forward + 52-head bank step; one
    configuration = forward + one head step; same images, same encoder."""
    from bench.encoders import load_encoder
    from bench.encoders.zoo._common import timm_encoder
    from bench.features import resolve_device
    from heads.linear import HeadSpec, LinearBank, head_grid

    device = resolve_device(args.device)
    if args.quick:
        encoder, label, batch, classes = load_encoder("vit-tiny"), "vit-tiny", 32, 100
    else:
        encoder = timm_encoder("vit_base_patch16_224", "vit-base-random", None, 0, resolution=224,
                               mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
        label, batch, classes = "ViT-B/16 random-init", 64, 1000
    encoder = encoder.eval().to(device)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, 224, 224, generator=g).to(device)
    targets = torch.randint(0, classes, (batch,), generator=g).to(device)

    def step_time(bank: LinearBank) -> float:
        bank.to(device)

        def run():
            with torch.inference_mode():
                out = encoder(images, n_last_blocks=4)
            cls = torch.stack([b.cls for b in out.blocks], 1).clone()
            avg = torch.stack([b.patches.mean(dim=(1, 2)) for b in out.blocks], 1).clone()
            bank.train_step(cls, avg, targets, 1.0)
            if device.type == "cuda":
                torch.cuda.synchronize()

        run()
        return timed(run, repeats=3)

    t_grid = step_time(LinearBank(head_grid(), encoder.embed_dim, classes))
    t_one = step_time(LinearBank([HeadSpec(1, False, 1e-3)], encoder.embed_dim, classes))
    return [PerfRow(f"linear grid vs one config, with forward ({label})", t_grid / t_one, 2.0,
                    f"{t_grid * 1000:.0f} vs {t_one * 1000:.0f} ms per batch of {batch}, {classes} classes")]
