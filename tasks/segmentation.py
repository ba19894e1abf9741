"""Semantic segmentation probes on frozen patch features (paper Table 2; DINOv2 linear protocol),
run through mmsegmentation 1.2.2: its datasets, pipelines, EncoderDecoder, TTA and IoUMetric.

Heads (heads/seg.py): Dropout2d(0.1) -> BN -> 1x1 conv on the patch grid, bilinear upsampling.
  linear: last block's patches.      +ms: last 4 blocks concatenated, multi-scale + flip test
  (image-scale ratios 1.0, 1.32, 1.73, 2.28, 3.0 x {no flip, flip}, softmax-averaged by SegTTAModel).

Two training variants (params "variant" / "train_aug" say which ran):
  faithful - the paper protocol: heads trained on the fly through mmseg pipelines (random resize
             0.5-2.0 of (2048, 512), random crop 512 with cat_max_ratio 0.75, flip, photometric
             distortion), AdamW lr 1e-3 wd 1e-4, 1500 warmup + poly, 40k iterations x batch 16,
             slide inference 512 / stride 341. Practical on a GPU. Default for ADE20K and VOC.
  fast     - heads trained on cached patch features of un-augmented images resized to S x S
             (S = encoder resolution): a bank of learning rates trains together on one pass over
             the features per step, the best lr is picked on a split held out from training
             (DINOv2's trick), then that head is evaluated on the fly exactly like the faithful
             one (mmseg test pipeline / TTA, slide windows S / stride 2S/3, IoUMetric). Default
             for the synthetic twins (CPU).
Switch with BENCH_SEG_VARIANT=fast|faithful (auto = the default above); BENCH_SEG_ITERS and
BENCH_SEG_BATCH override the iteration count / batch of the variant that runs. See docs/segmentation.md.
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from tasks import Metric, RealData, SyntheticData, Task, register_task

VARIANT_ENV, ITERS_ENV, BATCH_ENV = "BENCH_SEG_VARIANT", "BENCH_SEG_ITERS", "BENCH_SEG_BATCH"
MS_RATIOS = (1.0, 1.32, 1.73, 2.28, 3.0)

METRICS = (
    Metric("mIoU", True, "mean intersection-over-union over classes (%), mmseg IoUMetric"),
    Metric("mAcc", True, "mean per-class pixel accuracy (%)"),
    Metric("aAcc", True, "overall pixel accuracy (%)"),
    Metric("mIoU_majority_baseline", True,
           "mIoU (%) of predicting the most frequent training class everywhere (a floor for the probe)"),
)


@dataclass(frozen=True)
class SegConfig:
    """Every knob of both variants (defaults = the protocol; see the module docstring)."""

    variant: str = "auto"  # auto | fast | faithful
    dropout: float = 0.1
    ms_ratios: tuple[float, ...] = MS_RATIOS
    # faithful: DINOv2 linear segmentation (mmseg 0.x configs), 8 GPUs x 2 images
    iters: int = 40_000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_frac: float = 1500 / 40_000  # 1500 linear-warmup iterations at 40k
    crop: int = 512
    stride: int = 341
    scale: tuple[int, int] = (2048, 512)
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    # fast: cached features, bank of learning rates, lr picked on a held-out part of train
    fast_lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    fast_epochs: float = 10.0  # iterations = epochs x train images / batch, clamped to [min, max]
    fast_min_iters: int = 200
    fast_max_iters: int = 10_000
    fast_iters: int | None = None  # exact iteration count (overrides the epochs rule)
    fast_batch: int = 16
    fast_size: int | None = None  # None: the encoder's resolution (rounded to the patch size)
    fast_stride_frac: float = 1.0  # slide stride / crop at test time (faithful: 341/512); 1.0 = tiling, ~2x cheaper
    holdout_frac: float = 0.1
    examples: int = 4  # val images in the overlay picture
    # synthetic +ms twin only: test on this many evenly spaced val images (10 TTA views each cost ~2 s
    # per image on a CPU); the majority baseline uses the same images. None = the whole val split.
    synthetic_ms_max_val: int | None = 32

    @classmethod
    def from_env(cls, **overrides) -> "SegConfig":
        cfg = replace(cls(), **overrides)
        variant = os.environ.get(VARIANT_ENV, cfg.variant).strip().lower() or "auto"
        if variant not in ("auto", "fast", "faithful"):
            raise ValueError(f"{VARIANT_ENV}={variant!r}: choose fast, faithful or auto")
        return replace(cfg, variant=variant)

    def resolve(self, synthetic: bool) -> "SegConfig":
        """Pick the variant (auto: fast on synthetic twins, faithful on real data) and apply env overrides."""
        variant = self.variant if self.variant != "auto" else ("fast" if synthetic else "faithful")
        cfg = replace(self, variant=variant)
        iters, batch = os.environ.get(ITERS_ENV), os.environ.get(BATCH_ENV)
        if variant == "fast":
            cfg = replace(cfg, fast_iters=int(iters) if iters else cfg.fast_iters,
                          fast_batch=int(batch or cfg.fast_batch))
        else:
            cfg = replace(cfg, iters=int(iters or cfg.iters), batch_size=int(batch or cfg.batch_size))
        return cfg


@dataclass
class Trained:
    model: object  # FrozenEncoderDecoder with the chosen head
    test_size: tuple[int, int] | None  # fast: (S, S) fixed resize; faithful: None (keep-ratio scale)
    majority_class: int
    params: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------- evaluate
def make_evaluate(kind: str, multiscale: bool):
    def evaluate(ctx, root: Path) -> dict[str, float]:
        return evaluate_segmentation(ctx, root, kind=kind, multiscale=multiscale)

    return evaluate


def evaluate_segmentation(ctx, root: Path, *, kind: str, multiscale: bool, cfg: SegConfig | None = None) -> dict:
    from bench.data.segmentation import SegData

    data = SegData.synthetic(root) if kind == "synth-ade" else SegData(kind, Path(root))
    cfg = (cfg or SegConfig.from_env()).resolve(synthetic=kind == "synth-ade")
    n_last = 4 if multiscale else 1
    if n_last > ctx.encoder.num_blocks:
        raise ValueError(f"+ms needs {n_last} blocks; {ctx.encoder.name} has {ctx.encoder.num_blocks}")
    t0 = time.perf_counter()
    trained = (train_fast if cfg.variant == "fast" else train_faithful)(ctx, data, cfg, n_last)
    t_train = time.perf_counter() - t0
    n_val = len(data.dataset("val", [dict(type="LoadAnnotations")]))
    cap = cfg.synthetic_ms_max_val if (multiscale and kind == "synth-ade") else None
    val_idx = None if cap is None or n_val <= cap else np.linspace(0, n_val - 1, cap).round().astype(int).tolist()
    metrics, per_class, examples = run_test(ctx, trained, data, cfg, multiscale, val_idx)
    baseline = majority_baseline(data, trained.majority_class, val_idx)
    t_all = time.perf_counter() - t0
    classes = data.metainfo()["classes"]
    ctx.log_params(
        variant=cfg.variant, features=f"patches-last-{n_last}-blocks" + ("-concat" if n_last > 1 else ""),
        head=f"Dropout2d({cfg.dropout})-BN-conv1x1-bilinear", num_classes=len(classes),
        test_tta=(f"multiscale{list(cfg.ms_ratios)}+flip(SegTTAModel softmax mean)" if multiscale else "none"),
        majority_class=f"{trained.majority_class}:{classes[trained.majority_class]}",
        val_images=(f"{n_val} (all)" if val_idx is None else f"{len(val_idx)} of {n_val}, evenly spaced"),
        train_seconds=round(t_train, 1), eval_seconds=round(t_all - t_train, 1), **trained.params)
    if ctx.artifacts_dir is not None:
        from bench.io import write_json

        write_json(ctx.artifact_path("seg_per_class.json"), per_class)
        if examples:
            save_examples(ctx.artifact_path("seg_examples.png"), examples, data.metainfo())
    return {**{k: float(metrics[k]) for k in ("mIoU", "mAcc", "aAcc")}, "mIoU_majority_baseline": baseline}


# ------------------------------------------------------------------------------ fast variant
def _fast_size(ctx, cfg: SegConfig) -> int:
    p = ctx.encoder.preprocess.patch_size
    s = cfg.fast_size or ctx.encoder.preprocess.resolution
    return max(p, int(round(s / p)) * p)


def train_fast(ctx, data, cfg: SegConfig, n_last: int) -> Trained:
    """Cached patch features of S x S images -> a bank of BN linear heads, one per lr; the lr with
    the best held-out mIoU wins. Loss at 2x the patch grid (labels resized nearest)."""
    from tqdm.auto import tqdm

    from bench.data.segmentation import ResizedSegImages, load_label_maps
    from bench.features import FeatureSpec
    from heads.seg import BankConfig, HeadBank, build_segmentor, param_groups

    enc, device = ctx.encoder, ctx.device
    p, size = enc.preprocess.patch_size, _fast_size(ctx, cfg)
    images = ResizedSegImages(data, "train", (size, size), enc.preprocess.mean, enc.preprocess.std)
    feats = ctx.features(images, images.identity(), images.describe(),
                         FeatureSpec(outputs=("patches",), n_last_blocks=n_last), "train")["patches"]
    n, L, h, w, d = feats.shape
    up = min(2, p)  # loss resolution: `up` x the patch grid
    labels = torch.from_numpy(np.stack(load_label_maps(data, "train", (up * h, up * w)))).long()
    num_classes = data.num_classes
    majority = _majority_class(data, num_classes)  # on full-resolution annotations, as in the faithful variant

    gen = ctx.generator()
    perm = torch.randperm(n, generator=gen)
    n_hold = int(round(cfg.holdout_frac * n)) if n >= 10 else (1 if n >= 3 else 0)
    hold, fit = perm[:n_hold], perm[n_hold:]
    bank_cfg = BankConfig(lrs=tuple(cfg.fast_lrs), weight_decay=cfg.weight_decay, dropout=cfg.dropout)
    bank = HeadBank(L * d, num_classes, len(bank_cfg.lrs), dropout=cfg.dropout, seed=ctx.seed).to(device)
    opt = torch.optim.AdamW(param_groups(bank, bank_cfg), betas=(0.9, 0.999))
    batch = min(cfg.fast_batch, len(fit))
    by_epochs = round(cfg.fast_epochs * len(fit) / batch)
    iters = cfg.fast_iters or int(min(cfg.fast_max_iters, max(cfg.fast_min_iters, by_epochs)))
    warm = max(1, int(round(iters * cfg.warmup_frac)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: _warmup_poly(it, warm, iters))

    def grid(idx):  # (B, L*D, h, w): blocks concatenated on channels, oldest first (= resize_concat)
        x = feats[idx].to(device, non_blocking=True).float()
        return x.permute(0, 1, 4, 2, 3).reshape(len(idx), L * d, h, w)

    bank.train()
    order, pos = fit[torch.randperm(len(fit), generator=gen)], 0
    for _ in tqdm(range(iters), desc=f"seg heads x{len(bank)}", unit="it", disable=not ctx.progress, leave=False):
        if pos + batch > len(order):
            order, pos = fit[torch.randperm(len(fit), generator=gen)], 0
        idx = order[pos:pos + batch]
        pos += batch
        x, y = grid(idx), labels[idx].to(device)
        loss = _bank_loss(bank(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()

    holdout_miou = _bank_holdout_miou(bank, grid, labels, hold, num_classes, device) if n_hold else []
    best = int(np.nanargmax(holdout_miou)) if holdout_miou and not np.all(np.isnan(holdout_miou)) \
        else min(range(len(bank_cfg.lrs)), key=lambda i: abs(bank_cfg.lrs[i] - cfg.lr))
    stride = max(1, int(round(size * cfg.fast_stride_frac)))
    model = build_segmentor(enc, num_classes, n_last_blocks=n_last, dropout=cfg.dropout, crop_size=(size, size),
                            test_mode="slide", stride=(stride, stride))
    model.decode_head.load_state_dict(bank.export(best))
    model.to(device)
    params = {
        "train_aug": f"none (cached features of {size}x{size} resized images)",
        "fast.size": size, "fast.iters": iters, "fast.batch": batch, "fast.optimizer": f"AdamW(wd={cfg.weight_decay:g})",
        "fast.schedule": f"linear-warmup {warm} + poly(1.0)",
        "fast.loss_resolution": f"{up}x patch grid ({up * h}x{up * w})",
        "fast.lrs": ",".join(f"{lr:g}" for lr in bank_cfg.lrs),
        "fast.holdout_mIoU": ",".join(f"{v:.2f}" for v in holdout_miou) or "n/a (too few images)",
        "fast.best_lr": bank_cfg.lrs[best], "n_train": len(fit), "n_holdout": n_hold,
        "test_mode": f"resize {size}x{size}, slide crop {size} stride {stride}",
    }
    return Trained(model, (size, size), majority, params)


def _bank_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum over heads of the pixel-mean cross-entropy (ignore 255) of logits upsampled to the labels."""
    import torch.nn.functional as F

    b, g, k, h, w = logits.shape
    up = F.interpolate(logits.reshape(b, g * k, h, w), size=y.shape[-2:], mode="bilinear", align_corners=False)
    target = y[:, None].expand(b, g, *y.shape[-2:]).reshape(b * g, *y.shape[-2:])
    loss = F.cross_entropy(up.reshape(b * g, k, *y.shape[-2:]), target, ignore_index=255, reduction="sum")
    return loss / (y != 255).sum().clamp(min=1)


def _warmup_poly(it: int, warm: int, total: int) -> float:
    """DINOv2/mmseg schedule as a multiplier: linear warmup from 1e-6, then poly(power=1) to 0."""
    if it < warm:
        return 1e-6 + (1 - 1e-6) * it / warm
    return max(0.0, 1 - (it - warm) / max(1, total - warm))


@torch.no_grad()
def _bank_holdout_miou(bank, grid, labels, hold, num_classes, device) -> list[float]:
    import torch.nn.functional as F
    from mmseg.evaluation import IoUMetric

    bank.eval()
    areas = [None] * len(bank)
    for s in range(0, len(hold), 32):
        idx = hold[s:s + 32]
        x, y = grid(idx), labels[idx].to(device)
        logits = bank(x)
        for g in range(len(bank)):
            pred = F.interpolate(logits[:, g], size=y.shape[-2:], mode="bilinear", align_corners=False).argmax(1)
            for pi, yi in zip(pred, y):
                a = IoUMetric.intersect_and_union(pi, yi, num_classes, 255)
                areas[g] = a if areas[g] is None else tuple(u + v for u, v in zip(areas[g], a))
    out = []
    for a in areas:
        iou = (a[0] / a[1]).cpu().numpy()
        out.append(float(np.nanmean(iou) * 100) if not np.all(np.isnan(iou)) else float("nan"))
    return out


# -------------------------------------------------------------------------- faithful variant
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


def train_faithful(ctx, data, cfg: SegConfig, n_last: int) -> Trained:
    """The paper protocol on the fly: mmseg train pipeline -> frozen encoder -> BN linear head."""
    from mmengine.dataset import InfiniteSampler, pseudo_collate
    from mmengine.optim import OptimWrapper
    from mmengine.optim.scheduler import LinearLR, PolyLR
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from heads.seg import build_segmentor

    enc, device = ctx.encoder, ctx.device
    num_classes = data.num_classes
    model = build_segmentor(enc, num_classes, n_last_blocks=n_last, dropout=cfg.dropout, crop_size=(cfg.crop, cfg.crop),
                            test_mode="slide", stride=(cfg.stride, cfg.stride)).to(device)
    dataset = data.dataset("train", train_pipeline(cfg))
    workers = getattr(ctx.extractor, "num_workers", 0)
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
    majority = _majority_class(data, num_classes)
    params = {
        "train_aug": (f"RandomResize{tuple(cfg.scale)} ratio {cfg.ratio_range} + RandomCrop {cfg.crop} "
                      f"cat_max {cfg.cat_max_ratio} + flip 0.5 + PhotoMetricDistortion"),
        "faithful.iters": cfg.iters, "faithful.batch": cfg.batch_size,
        "faithful.optimizer": f"AdamW(lr={cfg.lr:g}, wd={cfg.weight_decay:g})",
        "faithful.schedule": f"LinearLR warmup {warm} (from 1e-6) + PolyLR(1.0)",
        "faithful.final_loss": round(float(last["loss"].detach()), 4) if last else "n/a",
        "n_train": len(dataset),
        "test_mode": f"resize {tuple(cfg.scale)} keep-ratio, slide crop {cfg.crop} stride {cfg.stride}",
    }
    return Trained(model, None, majority, params)


def _majority_class(data, num_classes: int, cap: int = 2000) -> int:
    """Most frequent training class (evenly spaced subset of at most `cap` annotations)."""
    from bench.data.segmentation import load_label_maps

    n = len(data.dataset("train"))
    idx = np.unique(np.linspace(0, n - 1, min(n, cap)).round().astype(int))
    counts = np.zeros(num_classes, np.int64)
    for seg in load_label_maps(data, "train", indices=idx):
        v = seg[seg != 255]
        counts += np.bincount(v.ravel(), minlength=num_classes)[:num_classes]
    return int(counts.argmax())


# ----------------------------------------------------------------------------------- testing
def test_pipeline(cfg: SegConfig, test_size: tuple[int, int] | None, multiscale: bool) -> list[dict]:
    """mmseg test pipeline; +ms wraps resize x flip in TestTimeAug (collated for SegTTAModel)."""
    def resize(r: float) -> dict:
        if test_size is not None:  # fast variant: the fixed S x S it was trained on, times r
            return dict(type="Resize", scale=(round(test_size[1] * r), round(test_size[0] * r)), keep_ratio=False)
        return dict(type="Resize", scale=(int(cfg.scale[0] * r), int(cfg.scale[1] * r)), keep_ratio=True)

    if not multiscale:
        return [dict(type="LoadImageFromFile"), resize(1.0), dict(type="LoadAnnotations"), dict(type="PackSegInputs")]
    return [dict(type="LoadImageFromFile"),
            dict(type="TestTimeAug", transforms=[
                [resize(r) for r in cfg.ms_ratios],
                [dict(type="RandomFlip", prob=0.0, direction="horizontal"),
                 dict(type="RandomFlip", prob=1.0, direction="horizontal")],
                [dict(type="LoadAnnotations")],
                [dict(type="PackSegInputs")]])]


def _quiet_compute(metric) -> dict:
    """IoUMetric.compute_metrics without its per-class table on stdout (that goes to an artifact)."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        return metric.compute_metrics(metric.results)
    finally:
        logger.setLevel(level)


def per_class_table(metric) -> dict:
    from mmseg.evaluation import IoUMetric

    inter, union, pred, label = (sum(r[i] for r in metric.results) for i in range(4))
    ret = IoUMetric.total_area_to_metrics(inter, union, pred, label, ["mIoU"])
    iou, acc = np.asarray(ret["IoU"], dtype=float), np.asarray(ret["Acc"], dtype=float)
    classes = metric.dataset_meta["classes"]
    return {c: {"IoU": None if np.isnan(iou[i]) else round(float(iou[i]) * 100, 2),
                "Acc": None if np.isnan(acc[i]) else round(float(acc[i]) * 100, 2),
                "gt_pixels": int(label[i])} for i, c in enumerate(classes)}


@torch.no_grad()
def run_test(ctx, trained: Trained, data, cfg: SegConfig, multiscale: bool, indices=None):
    """Val split on the fly through mmseg's test pipeline (TTA for +ms) and IoUMetric."""
    from mmengine.dataset import pseudo_collate
    from mmseg.evaluation import IoUMetric
    from mmseg.models import SegTTAModel
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    dataset = data.dataset("val", test_pipeline(cfg, trained.test_size, multiscale), test_mode=True)
    if indices is not None:
        from torch.utils.data import Subset

        dataset = Subset(dataset, indices)
    workers = getattr(ctx.extractor, "num_workers", 0)
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=workers, collate_fn=pseudo_collate)
    model = trained.model.eval()
    runner = SegTTAModel(module=model) if multiscale else model
    metric = IoUMetric(iou_metrics=["mIoU"], prefix="seg")
    metric.dataset_meta = data.metainfo()
    examples = []
    for batch in tqdm(loader, desc="seg test" + (" (ms+flip)" if multiscale else ""), unit="img",
                      disable=not ctx.progress, leave=False):
        with warnings.catch_warnings():  # SegTTAModel stores 2-D predictions: PixelData warns, harmlessly
            warnings.filterwarnings("ignore", message="The shape of value will convert")
            outs = runner.test_step(batch)
        metric.process(batch, [o.to_dict() for o in outs])
        for o in outs:
            if len(examples) < cfg.examples:
                examples.append((o.img_path, o.gt_sem_seg.data.squeeze(0).cpu().numpy(),
                                 o.pred_sem_seg.data.squeeze(0).cpu().numpy()))
    per_class = per_class_table(metric)
    return _quiet_compute(metric), per_class, examples


def majority_baseline(data, majority: int, indices=None) -> float:
    """IoUMetric mIoU of the constant prediction `majority` over the val annotations."""
    from mmseg.evaluation import IoUMetric

    from bench.data.segmentation import load_label_maps

    metric = IoUMetric(iou_metrics=["mIoU"], prefix="seg")
    metric.dataset_meta = data.metainfo()
    for seg in load_label_maps(data, "val", indices=indices):
        gt = torch.from_numpy(seg.astype(np.int64))
        metric.process({}, [{"pred_sem_seg": {"data": torch.full_like(gt, majority)}, "gt_sem_seg": {"data": gt}}])
    return float(_quiet_compute(metric)["mIoU"])


def save_examples(path: Path, examples, meta: dict) -> None:
    """Image | ground truth overlay | prediction overlay for a few val images (ignore = no colour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mmcv

    palette = np.array(meta["palette"], dtype=np.float32)
    fig, axes = plt.subplots(len(examples), 3, figsize=(10, 2.8 * len(examples)), squeeze=False)

    def overlay(img, seg):
        out = img.astype(np.float32).copy()
        m = seg != 255
        out[m] = 0.45 * out[m] + 0.55 * palette[np.clip(seg[m], 0, len(palette) - 1)]
        return out.clip(0, 255).astype(np.uint8)

    for row, (img_path, gt, pred) in zip(axes, examples):
        img = mmcv.imread(img_path, channel_order="rgb")
        if img.shape[:2] != gt.shape:
            img = mmcv.imresize(img, (gt.shape[1], gt.shape[0]))
        for ax, im, title in zip(row, (img, overlay(img, gt), overlay(img, pred)),
                                 (Path(img_path).name, "ground truth", "prediction")):
            ax.imshow(im)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    from matplotlib.patches import Patch

    shown = sorted({int(c) for _, gt, pred in examples for c in np.unique(np.concatenate([gt.ravel(), pred.ravel()]))
                    if c != 255 and c < len(palette)})
    handles = [Patch(color=palette[c] / 255.0, label=str(meta["classes"][c])) for c in shown]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.03 * (1 + len(handles) // 6) / max(1, len(examples) / 2), 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ------------------------------------------------------------------------------------- tasks
def _protocol(dataset: str, multiscale: bool, synthetic: bool) -> dict:
    return {
        "protocol": "dinov2-linear-seg" + ("-ms" if multiscale else ""),
        "engine": "mmsegmentation-1.2.2",
        "dataset": dataset,
        "features": "patches-last-4-blocks-concat" if multiscale else "patches-last-block",
        "head": "Dropout2d(0.1)-BN-conv1x1, bilinear upsampling",
        "test": (f"multiscale {list(MS_RATIOS)} + flip (SegTTAModel)" if multiscale else "single scale")
        + ", slide inference",
        "default_variant": "fast (cached features, lr bank, held-out pick)" if synthetic
        else "faithful (40k iters, 512 crop, random resize/crop/flip/photometric, slide 512/341)",
        "variant_switch": f"{VARIANT_ENV}=fast|faithful",
        "metric": "IoUMetric (mIoU headline, mAcc, aAcc)",
    }


ADE20K = RealData(
    "ADE20K", "ade20k", "BENCH_ADE20K",
    ("ADEChallengeData2016/images/training", "ADEChallengeData2016/images/validation",
     "ADEChallengeData2016/annotations/training", "ADEChallengeData2016/annotations/validation"),
    "Download ADEChallengeData2016.zip (SceneParsing150, 20,210 train / 2,000 val images) from "
    "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip and unzip it, giving "
    "ADEChallengeData2016/{images,annotations}/{training,validation}/ (annotations: uint8 PNG, 0 = other).")

VOC2012 = RealData(
    "Pascal VOC 2012", "voc", "BENCH_VOC",
    ("VOCdevkit/VOC2012/JPEGImages", "VOCdevkit/VOC2012/SegmentationClass",
     "VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt", "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt"),
    "Download VOCtrainval_11-May-2012.tar from http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ and untar it, "
    "giving VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation/{train,val}.txt} "
    "(SegmentationClass: palette PNGs, 21 classes, 255 = object borders / ignored).")

for _ms in (False, True):
    _suffix = "ms" if _ms else "linear"
    _what = "linear head on the last 4 blocks, multi-scale + flip test" if _ms else "linear head on the last block"
    register_task(Task(
        name=f"synth-seg-{_suffix}", group="segmentation",
        description=f"Semantic segmentation of the synthetic scenes (ADE20K layout twin), {_what}",
        data=SyntheticData("ade"), metrics=METRICS, headline="mIoU",
        protocol=_protocol("synthetic ADE20K-layout scenes (K classes of ade/classes.json)", _ms, True),
        evaluate=make_evaluate("synth-ade", _ms)))
    register_task(Task(
        name=f"ade20k-seg-{_suffix}", group="segmentation",
        description=f"ADE20K (150 classes) semantic segmentation, {_what} (paper Table 2)",
        data=ADE20K, metrics=METRICS, headline="mIoU",
        protocol=_protocol("ADE20K SceneParsing150 (reduce_zero_label)", _ms, False),
        evaluate=make_evaluate("ade", _ms), paper_task=f"ade20k-seg-{_suffix}"))
    register_task(Task(
        name=f"voc-seg-{_suffix}", group="segmentation",
        description=f"Pascal VOC 2012 (21 classes) semantic segmentation, {_what} (paper Table 2)",
        data=VOC2012, metrics=METRICS, headline="mIoU",
        protocol=_protocol("Pascal VOC 2012 (train -> val, 21 classes)", _ms, False),
        evaluate=make_evaluate("voc", _ms), paper_task=f"voc-seg-{_suffix}"))

__all__ = ["SegConfig", "evaluate_segmentation", "majority_baseline", "run_test", "test_pipeline", "train_fast",
           "train_faithful", "train_pipeline"]
