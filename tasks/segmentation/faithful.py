"""The faithful variant: the paper's protocol on the fly through mmseg pipelines (random resize 0.5-2.0
of (2048, 512), random crop 512 with cat_max_ratio 0.75, flip, photometric distortion), AdamW lr 1e-3
wd 1e-4, 1500 warmup + poly, 40k iterations x batch 16, slide inference 512 / stride 341. A GPU job."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from bench.context import EvalContext
from bench.metrics.segmentation import majority_class
from tasks.segmentation.config import SegConfig


@dataclass
class Trained:
    model: object  # FrozenEncoderDecoder with the chosen head
    test_size: tuple[int, int] | None  # fast: (S, S) fixed resize; faithful: None (keep-ratio scale)
    majority_class: int
    params: dict = field(default_factory=dict)


def train_pipeline(cfg: SegConfig) -> list[dict]:
    return [
        dict(type="LoadImageFromFile"),
        dict(type="LoadAnnotations"),
        dict(type="RandomResize", scale=cfg.scale, ratio_range=cfg.ratio_range, keep_ratio=True),
        dict(type="RandomCrop", crop_size=(cfg.crop, cfg.crop), cat_max_ratio=cfg.cat_max_ratio),
        dict(type="RandomFlip", prob=0.5),
        dict(type="PhotoMetricDistortion"),
        dict(type="PackSegInputs"),
    ]


def train_faithful(ctx: EvalContext, data, cfg: SegConfig, n_last: int) -> Trained:
    """mmseg train pipeline -> frozen encoder -> BN linear head, `cfg.iters` steps of `cfg.batch_size`."""
    from mmengine.dataset import InfiniteSampler, pseudo_collate
    from mmengine.optim import OptimWrapper
    from mmengine.optim.scheduler import LinearLR, PolyLR
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from heads.seg import build_segmentor

    device, workers = ctx.device, ctx.num_workers
    num_classes = data.num_classes
    model = build_segmentor(ctx.encoder, num_classes, n_last_blocks=n_last, dropout=cfg.dropout,
                            crop_size=(cfg.crop, cfg.crop), test_mode="slide", stride=(cfg.stride, cfg.stride))
    model.to(device)
    dataset = data.dataset("train", train_pipeline(cfg))
    sampler = InfiniteSampler(dataset, shuffle=True, seed=ctx.seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler,
                        num_workers=workers, collate_fn=pseudo_collate, persistent_workers=workers > 0,
                        pin_memory=device.type == "cuda")
    head_params = list(model.decode_head.parameters())
    optim = OptimWrapper(torch.optim.AdamW(head_params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999)))
    warm = max(1, int(round(cfg.iters * cfg.warmup_frac)))
    scheds = [LinearLR(optim, start_factor=1e-6, by_epoch=False, begin=0, end=warm),
              PolyLR(optim, power=1.0, eta_min=0.0, by_epoch=False, begin=warm, end=cfg.iters)]
    model.train()
    stream, last = iter(loader), {}
    bar = tqdm(range(cfg.iters), desc="seg head (on the fly)", unit="it", disable=not ctx.progress, leave=False)
    for it in bar:
        last = model.train_step(next(stream), optim)
        for s in scheds:
            s.step()
        if it % 50 == 0:
            bar.set_postfix(loss=float(last["loss"].detach()))
    del stream  # ends the loader's workers
    model.eval()
    params = {
        "train_aug": (f"RandomResize{tuple(cfg.scale)} ratio {tuple(cfg.ratio_range)} + RandomCrop {cfg.crop} "
                      f"cat_max {cfg.cat_max_ratio} + flip 0.5 + PhotoMetricDistortion"),
        "faithful.optimizer": f"AdamW(lr={cfg.lr:g}, wd={cfg.weight_decay:g})",
        "faithful.schedule": f"LinearLR warmup {warm} (from 1e-6) + PolyLR(1.0)",
        "faithful.final_loss": round(float(last["loss"].detach()), 4) if last else "n/a",
        "n_train": len(dataset),
        "test_mode": f"resize {tuple(cfg.scale)} keep-ratio, slide crop {cfg.crop} stride {cfg.stride}",
    }
    return Trained(model, None, majority_class(data, num_classes), params)


__all__ = ["Trained", "train_faithful", "train_pipeline"]
