"""Linear classification on frozen features (paper Table 5, App. A.6; DINOv2 linear protocol).

The whole DINOv2 grid (13 learning rates x last {1, 4} blocks' CLS x {with, without} the last
block's average-pooled patch tokens = 52 heads) trains as one `LinearBank` on one pass over the
cached features per epoch: SGD momentum 0.9, no weight decay, cosine schedule, 10 epochs, lr scaled
by batch/256. The best head is chosen on a stratified 10% split held out from train and reported on
val, so the reported number never selected its own hyper-parameters.

Protocol variant: by default the train features are the cached eval-transform features (resize +
centre crop, no augmentation). `BENCH_LINEAR_MODE=augmented` reproduces the paper's
random-resized-crop + flip training instead, running the frozen encoder on every batch of every
epoch (10x the encoder forwards). The mode is logged in the run's params.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import v2 as T

from bench.data.imagefolder import ImageFolder
from bench.data.transforms import EvalTransform
from bench.features import FeatureSpec, autocast_for, select_features
from bench.metrics.classification import chance_top1
from heads.linear import (DINOV2_LRS, CachedFeatures, LinearBank, LinearConfig, best_head, effective_batch_size,
                          epoch_order, evaluate_bank, head_grid, stratified_split, train_bank)
from bench.data.imagefolder import IMAGENET
from tasks import Metric, SyntheticData, Task, register_task

MODE_ENV = "BENCH_LINEAR_MODE"  # cached (default) | augmented
CONFIG = LinearConfig(epochs=10, batch_size=1024, momentum=0.9, weight_decay=0.0, init_std=0.01, lr_scale_base=256)
HELDOUT_FRACTION = 0.1
N_BLOCKS = 4

PROTOCOL = {
    "protocol": "dinov2-linear",
    "heads": "13 lrs x last{1,4} blocks CLS x {with,without} last-block avgpool, one bank",
    "lrs": ",".join(f"{lr:g}" for lr in DINOV2_LRS),
    "lr_scaling": "lr*batch/256",
    "optimizer": "sgd-momentum0.9-wd0",
    "schedule": "cosine-per-iteration-10-epochs",
    "init": "normal(0,0.01)-bias0",
    "selection": f"best top1 on a stratified {int(HELDOUT_FRACTION * 100)}% split held out from train; reported on val",
    "train_features": f"cached eval transform (default) or random-resized-crop+flip on the fly ({MODE_ENV}=augmented)",
}
METRICS = (
    Metric("top1", True, "top-1 accuracy (%) on val of the head chosen on the held-out split"),
    Metric("top5", True, "top-5 accuracy (%) on val of the chosen head"),
    Metric("mean_per_class", True, "mean per-class accuracy (%) on val of the chosen head"),
    Metric("heldout_top1", True, "top-1 (%) of the chosen head on the held-out train split (selection score)"),
    Metric("chance_top1", True, "reference, not a score: 100 / number of classes"),
)


def linear_mode() -> str:
    mode = os.environ.get(MODE_ENV, "cached").strip().lower() or "cached"
    if mode not in ("cached", "augmented"):
        raise ValueError(f"{MODE_ENV} must be 'cached' or 'augmented', got {mode!r}")
    return mode


def train_transform(preprocess) -> T.Compose:
    """DINOv2's classification train transform: random-resized-crop, horizontal flip, normalise."""
    interp = T.InterpolationMode.BICUBIC if preprocess.interpolation == "bicubic" else T.InterpolationMode.BILINEAR
    return T.Compose([T.PILToTensor(), T.RandomResizedCrop(preprocess.resolution, interpolation=interp, antialias=True),
                      T.RandomHorizontalFlip(0.5), T.ToDtype(torch.float32, scale=True),
                      T.Normalize(preprocess.mean, preprocess.std)])


def augmented_batches(ctx, root: Path, train_idx: np.ndarray, n_blocks: int, batch_size: int):
    """(cls, avgpool, y) per batch, extracted through the frozen encoder from freshly augmented images."""
    dataset = ImageFolder(root, "train", train_transform(ctx.encoder.preprocess))
    spec = FeatureSpec(("cls", "avgpool"), n_blocks)
    encoder, device = ctx.encoder.to(ctx.device), ctx.device

    def batches(epoch: int):
        order = train_idx[epoch_order(len(train_idx), ctx.seed, epoch)]
        g = torch.Generator().manual_seed(ctx.seed * 1000 + epoch)
        loader = DataLoader(Subset(dataset, order.tolist()), batch_size=batch_size, shuffle=False,
                            num_workers=ctx.extractor.num_workers, generator=g,
                            pin_memory=device.type == "cuda")
        for images, y in loader:
            with torch.no_grad(), autocast_for(device):
                feats = select_features(encoder(images.to(device, non_blocking=True), n_last_blocks=n_blocks), spec)
            yield feats["cls"].float(), feats["avgpool"].float(), y.to(device)

    return batches


def evaluate(ctx, root: Path) -> dict[str, float]:
    mode = linear_mode()
    transform = EvalTransform(ctx.encoder.preprocess)
    train, val = ImageFolder(root, "train", transform), ImageFolder(root, "val", transform)
    if train.classes != val.classes:
        raise ValueError(f"train and val class folders differ under {root}")
    num_classes = len(train.classes)
    n_blocks = min(N_BLOCKS, ctx.encoder.num_blocks)
    spec = FeatureSpec(("cls", "avgpool"), n_blocks)
    f_train = ctx.features(train, train.identity(), transform.describe(), spec, "train")
    f_val = ctx.features(val, val.identity(), transform.describe(), spec, "val")
    y_train, y_val = torch.tensor(train.targets), torch.tensor(val.targets)

    train_idx, held_idx = stratified_split(train.targets, HELDOUT_FRACTION, ctx.seed)
    if held_idx.size == 0:
        raise ValueError("the train split is too small to hold out a validation part (need >= 2 images per class)")
    batch_size = effective_batch_size(len(train_idx), CONFIG.batch_size)
    steps_per_epoch = math.ceil(len(train_idx) / batch_size)
    specs = head_grid(DINOV2_LRS, blocks=sorted({1, n_blocks}))
    embed_dim = f_train["cls"].shape[-1]
    bank = LinearBank(specs, embed_dim, num_classes, seed=ctx.seed, init_std=CONFIG.init_std).to(ctx.device)

    if mode == "cached":
        data = CachedFeatures(f_train, y_train, n_blocks, True, ctx.device, indices=train_idx)
        batches = lambda epoch: data.epoch(batch_size, ctx.seed, epoch)  # noqa: E731
    else:
        batches = augmented_batches(ctx, root, train_idx, n_blocks, batch_size)
    history = train_bank(bank, batches, steps_per_epoch, CONFIG, batch_size, progress=ctx.progress,
                         desc=f"{ctx.encoder.name} linear bank ({len(specs)} heads)")

    held = evaluate_bank(bank, CachedFeatures(f_train, y_train, n_blocks, True, ctx.device, indices=held_idx))
    scores = evaluate_bank(bank, CachedFeatures(f_val, y_val, n_blocks, True, ctx.device))
    best = best_head(held, "top1")
    chosen = specs[best]

    heads = [{**s.as_dict(), "heldout": h, "val": v, "final_loss": history[-1][i]}
             for i, (s, h, v) in enumerate(zip(specs, held, scores))]
    if ctx.artifacts_dir is not None:
        ctx.artifact_path("linear_heads.json").write_text(json.dumps(
            {"chosen": chosen.name, "selection": "heldout top1", "heads": heads,
             "loss_per_epoch": history}, indent=2))
    ctx.log_params(mode=mode, transform=transform.describe(), n_train=len(train_idx), n_heldout=len(held_idx),
                   n_val=len(val), num_classes=num_classes, batch_size=batch_size, epochs=CONFIG.epochs,
                   steps=steps_per_epoch * CONFIG.epochs, lr_scale=CONFIG.lr_scale(batch_size),
                   n_heads=len(specs), n_last_blocks_max=n_blocks, best_head=chosen.name, best_lr=chosen.lr,
                   best_n_blocks=chosen.n_blocks, best_avgpool=chosen.avgpool,
                   **({"train_transform": "random-resized-crop+hflip"} if mode == "augmented" else {}))
    return {"top1": scores[best]["top1"], "top5": scores[best]["top5"],
            "mean_per_class": scores[best]["mean_per_class"], "heldout_top1": held[best]["top1"],
            "chance_top1": chance_top1(num_classes)}


register_task(Task(
    name="synth-cls-linear", group="classification",
    description="Linear probe bank on object-category crops of the synthetic scenes (twin of ImageNet linear)",
    data=SyntheticData("cls"), metrics=METRICS, headline="top1", protocol=PROTOCOL, evaluate=evaluate,
))

register_task(Task(
    name="imagenet-linear", group="classification",
    description="ImageNet-1k linear probe, DINOv2 protocol (52-head bank; train -> val)",
    data=IMAGENET,
    metrics=METRICS, headline="top1", protocol=PROTOCOL, evaluate=evaluate, paper_task="imagenet-linear",
))
