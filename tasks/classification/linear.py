"""Linear classification on frozen features (paper Table 5, App. A.6; DINOv2 linear protocol).

The whole DINOv2 grid (13 learning rates x last {1, 4} blocks' CLS x {with, without} the last
block's average-pooled patch tokens = 52 heads) trains as one `LinearBank` on one pass over the
cached features per epoch: SGD momentum 0.9, no weight decay, cosine schedule, 10 epochs, lr scaled
by batch/256. The best head is chosen on a stratified 10% split held out from train and reported on
val, so the reported number never selected its own hyper-parameters.

Protocol variant (`mode`): by default the train features are the cached eval-transform features
(resize + centre crop, no augmentation). `--set TASK.mode=augmented` reproduces the paper's
random-resized-crop + flip training instead, encoding every batch of every epoch online (10x the
encoder forwards). The mode is part of the run's `protocol.*` params.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import v2 as T

from bench.config import ConfigError
from bench.context import EvalContext
from bench.data.imagefolder import ImageFolder
from bench.data.transforms import EvalTransform, interpolation_mode
from bench.features import FeatureSpec
from bench.metrics.classification import chance_top1, topk_hits
from bench.task import FeatureProbe, FeatureRequest, ItemScores, TaskResult
from heads.linear import (DINOV2_LRS, CachedFeatures, LinearBank, LinearConfig, best_head, effective_batch_size,
                          epoch_order, evaluate_bank, head_grid, stratified_split, train_bank)


@dataclass(frozen=True)
class LinearProbeConfig:
    mode: str = "cached"  # cached | augmented (random-resized-crop + flip, encoded online)
    lrs: tuple[float, ...] = DINOV2_LRS
    n_blocks: int = 4  # the bank reads the CLS of the last 1 and the last n blocks
    heldout_fraction: float = 0.1
    train: LinearConfig = field(default_factory=lambda: LinearConfig(
        epochs=10, batch_size=1024, momentum=0.9, weight_decay=0.0, init_std=0.01, lr_scale_base=256))

    def __post_init__(self) -> None:
        if self.mode not in ("cached", "augmented"):
            raise ConfigError(f"linear probe mode must be 'cached' or 'augmented', got {self.mode!r}")
        if not 0 < self.heldout_fraction < 1 or self.n_blocks < 1 or not self.lrs:
            raise ConfigError("linear probe: heldout_fraction in (0, 1), n_blocks >= 1 and at least one lr")
        if self.train.epochs < 1 or self.train.batch_size < 1:
            raise ConfigError("linear probe: train.epochs and train.batch_size must be >= 1")


def train_transform(preprocess) -> T.Compose:
    """DINOv2's classification train transform: random-resized-crop, horizontal flip, normalise."""
    return T.Compose([T.PILToTensor(),
                      T.RandomResizedCrop(preprocess.resolution, interpolation=interpolation_mode(preprocess.interpolation),
                                          antialias=True),
                      T.RandomHorizontalFlip(0.5), T.ToDtype(torch.float32, scale=True),
                      T.Normalize(preprocess.mean, preprocess.std)])


def cached_spec(n_blocks: int, encoder_blocks: int) -> FeatureSpec:
    """The cached features the probe reads (CLS + average-pooled patches of the last `n_blocks`); kNN
    asks for the same entry, so one extraction of the images serves both probes."""
    return FeatureSpec(("cls", "avgpool"), min(n_blocks, encoder_blocks))


def augmented_batches(ctx: EvalContext, train_idx: np.ndarray, n_blocks: int, batch_size: int):
    """(cls, avgpool, y) per batch, encoded online by the frozen encoder from freshly augmented images."""
    dataset = ImageFolder(ctx.root, "train", train_transform(ctx.encoder.preprocess))
    spec = FeatureSpec(("cls", "avgpool"), n_blocks)

    def batches(epoch: int):
        order = train_idx[epoch_order(len(train_idx), ctx.seed, epoch)]
        g = torch.Generator().manual_seed(ctx.seed * 1000 + epoch)
        loader = DataLoader(Subset(dataset, order.tolist()), batch_size=batch_size, shuffle=False,
                            num_workers=ctx.num_workers, generator=g, pin_memory=ctx.device.type == "cuda")
        for images, y in loader:
            feats = ctx.encode(images, spec)
            yield feats["cls"], feats["avgpool"], y.to(ctx.device)

    return batches


class LinearProbe(FeatureProbe):
    Config = LinearProbeConfig

    def inputs(self, ctx: EvalContext, cfg: LinearProbeConfig) -> dict[str, FeatureRequest]:
        transform = EvalTransform(ctx.encoder.preprocess)
        train, val = ImageFolder(ctx.root, "train", transform), ImageFolder(ctx.root, "val", transform)
        if train.classes != val.classes:
            raise ValueError(f"train and val class folders differ under {ctx.root}")
        spec = cached_spec(cfg.n_blocks, ctx.encoder.num_blocks)
        return {s: FeatureRequest(d, spec, d.identity(), transform.describe()) for s, d in (("train", train), ("val", val))}

    def fit(self, ctx: EvalContext, cfg: LinearProbeConfig, inputs, features):
        train = inputs["train"].dataset
        n_blocks = inputs["train"].spec.n_last_blocks
        f_train, y_train = features["train"], torch.tensor(train.targets)
        train_idx, held_idx = stratified_split(train.targets, cfg.heldout_fraction, ctx.seed)
        if held_idx.size == 0:
            raise ValueError("the train split is too small to hold out a validation part (need >= 2 images per class)")
        batch_size = effective_batch_size(len(train_idx), cfg.train.batch_size)
        steps_per_epoch = math.ceil(len(train_idx) / batch_size)
        specs = head_grid(cfg.lrs, blocks=sorted({1, n_blocks}))
        bank = LinearBank(specs, f_train["cls"].shape[-1], len(train.classes), seed=ctx.seed,
                          init_std=cfg.train.init_std).to(ctx.device)
        if cfg.mode == "cached":
            data = CachedFeatures(f_train, y_train, n_blocks, True, ctx.device, indices=train_idx)
            batches = lambda epoch: data.epoch(batch_size, ctx.seed, epoch)  # noqa: E731
        else:
            batches = augmented_batches(ctx, train_idx, n_blocks, batch_size)
        history = train_bank(bank, batches, steps_per_epoch, cfg.train, batch_size, progress=ctx.progress,
                             desc=f"{ctx.encoder.name} linear bank ({len(specs)} heads)")
        held = evaluate_bank(bank, CachedFeatures(f_train, y_train, n_blocks, True, ctx.device, indices=held_idx))
        return {"bank": bank, "specs": specs, "held": held, "history": history, "n_train": len(train_idx),
                "n_heldout": len(held_idx), "batch_size": batch_size, "steps": steps_per_epoch * cfg.train.epochs,
                "n_blocks": n_blocks}

    def score(self, ctx: EvalContext, cfg: LinearProbeConfig, fitted, inputs, features) -> TaskResult:
        train, val = inputs["train"].dataset, inputs["val"].dataset
        num_classes, n_blocks, specs, held = len(train.classes), fitted["n_blocks"], fitted["specs"], fitted["held"]
        scores = evaluate_bank(fitted["bank"], CachedFeatures(features["val"], torch.tensor(val.targets), n_blocks,
                                                              True, ctx.device))
        best = best_head(held, "top1")
        chosen = specs[best]
        path = ctx.artifact_path("linear_heads.json")
        if path is not None:
            heads = [{**s.as_dict(), "heldout": h, "val": v, "final_loss": fitted["history"][-1][i]}
                     for i, (s, h, v) in enumerate(zip(specs, held, scores))]
            path.write_text(json.dumps({"chosen": chosen.name, "selection": "heldout top1", "heads": heads,
                                        "loss_per_epoch": fitted["history"]}, indent=2))
        ctx.log_params(transform=inputs["train"].transform, n_train=fitted["n_train"], n_heldout=fitted["n_heldout"],
                       n_val=len(val), num_classes=num_classes, batch_size=fitted["batch_size"],
                       epochs=cfg.train.epochs, steps=fitted["steps"], lr_scale=cfg.train.lr_scale(fitted["batch_size"]),
                       n_heads=len(specs), n_last_blocks_max=n_blocks, best_head=chosen.name, best_lr=chosen.lr,
                       best_n_blocks=chosen.n_blocks, best_avgpool=chosen.avgpool,
                       **({"train_transform": "random-resized-crop+hflip"} if cfg.mode == "augmented" else {}))
        return TaskResult({"top1": scores[best]["top1"], "top5": scores[best]["top5"],
                           "mean_per_class": scores[best]["mean_per_class"], "heldout_top1": held[best]["top1"],
                           "chance_top1": chance_top1(num_classes)},
                          items=chosen_head_hits(fitted["bank"], best, CachedFeatures(
                              features["val"], torch.tensor(val.targets), n_blocks, True, ctx.device)))


@torch.no_grad()
def chosen_head_hits(bank: LinearBank, head: int, data: CachedFeatures) -> dict[str, ItemScores]:
    """Each val image's top-1 / top-5 hit (x 100) under the selected head, and (top-1 hit, label) rows for
    the mean per-class accuracy: the intervals bootstrap these."""
    hits: dict[int, list[torch.Tensor]] = {1: [], 5: []}
    labels = []
    for cls, avg, y in data.in_order(1024):
        logits = bank(cls, avg)[:, head]
        labels.append(y.cpu())
        for k in hits:
            hits[k].append(topk_hits(logits, y.to(logits.device), k).cpu())
    items = {f"top{k}": ItemScores(torch.cat(v).double().numpy(), "mean", 100.0) for k, v in hits.items()}
    rows = torch.stack([torch.cat(hits[1]).double(), torch.cat(labels).double()], dim=1).numpy()
    return {**items, "mean_per_class": ItemScores(rows, "mean_per_class", 100.0)}
