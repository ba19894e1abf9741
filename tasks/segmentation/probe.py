"""Semantic segmentation probes on frozen patch features (paper Table 2; DINOv2 linear protocol),
run through mmsegmentation 1.2.2: its datasets, pipelines, EncoderDecoder, TTA and IoUMetric.

Heads (heads/seg.py): Dropout2d(0.1) -> BN -> 1x1 conv on the patch grid, bilinear upsampling.
  linear: last block's patches.      +ms: last 4 blocks concatenated, multi-scale + flip test
  (image-scale ratios 1.0, 1.32, 1.73, 2.28, 3.0 x {no flip, flip}, softmax-averaged by SegTTAModel).

Two training variants (config `variant`; the run's `protocol.variant` and `train_aug` say which ran):
  faithful - the paper protocol, heads trained on the fly through mmseg pipelines (`faithful.py`).
             Practical on a GPU. Default for ADE20K and VOC.
  fast     - heads trained on cached patch features of un-augmented images resized to S x S
             (S = encoder resolution): a bank of learning rates trains together on one pass over
             the features per step, the best lr is picked on a split held out from training
             (DINOv2's trick), then that head is evaluated on the fly exactly like the faithful
             one (mmseg test pipeline / TTA, slide windows S / stride S, IoUMetric). Default for
             the synthetic twins (CPU).
Switch with `--set TASK.variant=fast|faithful`; every knob is a `SegConfig` field. See docs/segmentation.md.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch

from bench import timing
from bench.context import EvalContext
from bench.features import FeatureSpec, loader_seed_draw
from bench.metrics import Metric
from bench.metrics.segmentation import (bank_miou, majority_baseline, majority_class, per_class_breakdown,
                                        per_class_table, quiet_compute)
from bench.task import ItemScores, Task, TaskMeta, TaskResult
from tasks.segmentation.config import SegConfig, default_config
from tasks.segmentation.faithful import Trained, train_faithful

PER_IMAGE_COUNTS = "per_image_counts"  # run_test also returns each image's intersection / union counts
PER_IMAGE_ACC_COUNTS = "per_image_acc_counts"  # ... and its correct / labelled pixel counts (mAcc, aAcc)
# the fast variant caches the train images' last 4 blocks for either head (the +ms head's input; the
# linear head reads the last of them): one extraction serves both heads of a run
CACHED_BLOCKS = 4
# how the fast variant picks its bank member (the direction is what matters: higher is better)
SELECTION = Metric("holdout_mIoU", True, "mIoU (%) of a bank member on the part of train held out for selection",
                   "%", "diagnostic")


class SegProbe(Task):
    Config = SegConfig

    def __init__(self, meta: TaskMeta, *, kind: str, multiscale: bool) -> None:
        super().__init__(meta, kind=kind, multiscale=multiscale)
        self.kind, self.multiscale = kind, multiscale

    def default_config(self) -> SegConfig:
        return default_config(self.meta.synthetic, self.multiscale)

    def run(self, ctx: EvalContext, cfg: SegConfig) -> TaskResult:
        from bench.data.segmentation import SegData
        from bench.io import write_json
        from bench.viz import segmentation_examples

        data = SegData.synthetic(ctx.root) if self.kind == "synth-ade" else SegData(self.kind, Path(ctx.root))
        n_last = 4 if self.multiscale else 1
        if n_last > ctx.encoder.num_blocks:
            raise ValueError(f"+ms needs {n_last} blocks; {ctx.encoder.name} has {ctx.encoder.num_blocks}")
        t0 = time.perf_counter()
        trained = (train_fast if cfg.variant == "fast" else train_faithful)(ctx, data, cfg, n_last)
        t_train = time.perf_counter() - t0
        n_val = len(data.dataset("val", [dict(type="LoadAnnotations")]))
        cap = cfg.max_val_images
        val_idx = None if cap is None or n_val <= cap else np.linspace(0, n_val - 1, cap).round().astype(int).tolist()
        metrics, per_class, examples = run_test(ctx, trained, data, cfg, self.multiscale, val_idx)
        counts = metrics.pop(PER_IMAGE_COUNTS)  # (images, 2, classes): intersection, union per class
        acc_counts = metrics.pop(PER_IMAGE_ACC_COUNTS)  # (images, 2, classes): correct, labelled pixels
        baseline = annotations_memo(ctx, annotations_key(data, "val"),
                                    lambda: majority_baseline(data, trained.majority_class, val_idx),
                                    what="majority_baseline", majority=trained.majority_class, indices=val_idx)
        classes = data.metainfo()["classes"]
        ctx.log_params(
            features=f"patches-last-{n_last}-blocks" + ("-concat" if n_last > 1 else ""),
            head=f"Dropout2d({cfg.dropout})-BN-conv1x1-bilinear", num_classes=len(classes),
            test_tta=(f"multiscale{list(cfg.ms_ratios)}+flip(SegTTAModel softmax mean)" if self.multiscale else "none"),
            majority_class=f"{trained.majority_class}:{classes[trained.majority_class]}",
            val_images=(f"{n_val} (all)" if val_idx is None else f"{len(val_idx)} of {n_val}, evenly spaced"),
            train_seconds=round(t_train, 1), eval_seconds=round(time.perf_counter() - t0 - t_train, 1),
            **trained.params)
        path = ctx.artifact_path("seg_per_class.json")
        if path is not None:
            write_json(path, per_class)
        path = ctx.artifact_path("seg_examples.png")
        if path is not None and examples:
            segmentation_examples(path, examples, data.metainfo())
        scores = {k: float(metrics[k]) for k in ("mIoU", "mAcc", "aAcc")}
        return TaskResult({**scores, "mIoU_majority_baseline": baseline}, per_class_breakdown(per_class),
                          items={"mIoU": ItemScores(counts, "miou", 100.0), "mAcc": ItemScores(acc_counts, "miou", 100.0),
                                 "aAcc": ItemScores(acc_counts, "ratio", 100.0)})


def annotations_key(data, split: str) -> dict:
    """What a value derived from `split`'s annotations depends on: the annotation files (paths, sizes,
    mtimes), the class list and the label reduction."""
    from bench.data.fingerprint import files_identity

    ds = data.dataset(split)
    labels = [Path(ds.get_data_info(i)["seg_map_path"]) for i in range(len(ds))]
    return {"seg_annotations": data.kind, "split": split, "classes": list(data.classes),
            "reduce_zero_label": data.reduce_zero_label, **files_identity(labels, data.dataset_root)}


def annotations_memo(ctx: EvalContext, key: dict, compute, **what):
    """`compute()` once per run (both heads of a run read the same label maps and baseline); `key` is
    `annotations_key(...)`, `what` names the value and its parameters."""
    return ctx.cache.memo.get({**key, **{k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in what.items()}}, compute)


# ------------------------------------------------------------------------------ fast variant
def fast_size(ctx: EvalContext, cfg: SegConfig) -> int:
    p = ctx.encoder.preprocess.patch_size
    s = cfg.fast_size or ctx.encoder.preprocess.resolution
    return max(p, int(round(s / p)) * p)


def train_fast(ctx: EvalContext, data, cfg: SegConfig, n_last: int) -> Trained:
    """Cached patch features of S x S images -> a bank of BN linear heads, one per lr; the lr with
    the best held-out mIoU wins. Loss at 2x the patch grid (labels resized nearest)."""
    from bench.data.segmentation import ResizedSegImages, load_label_maps
    from heads.bank import select_best
    from heads.seg import BankConfig, HeadBank, bank_logits, build_segmentor, train_head_bank

    enc, device = ctx.encoder, ctx.device
    p, size = enc.preprocess.patch_size, fast_size(ctx, cfg)
    images = ResizedSegImages(data, "train", (size, size), enc.preprocess.mean, enc.preprocess.std)
    cached = max(n_last, min(CACHED_BLOCKS, enc.num_blocks))
    extracted = ctx.cache.stats.extracted
    feats = ctx.features(images, images.identity(), images.describe(),
                         FeatureSpec(outputs=("patches",), n_last_blocks=cached), "train")["patches"][:, -n_last:]
    if ctx.cache.stats.extracted == extracted:  # e.g. the other head's entry: the RNG as if extracted here
        loader_seed_draw()
    n, L, h, w, d = feats.shape
    up = min(2, p)  # loss resolution: `up` x the patch grid
    train_key = annotations_key(data, "train")
    maps = annotations_memo(ctx, train_key, lambda: load_label_maps(data, "train", (up * h, up * w)),
                            what="label_maps", size_hw=[up * h, up * w])
    labels = torch.from_numpy(np.stack(maps)).long()
    num_classes = data.num_classes
    # on full-resolution annotations, as in the faithful variant
    majority = annotations_memo(ctx, train_key, lambda: majority_class(data, num_classes), what="majority_class",
                                num_classes=num_classes)

    gen = ctx.generator()
    perm = torch.randperm(n, generator=gen)
    n_hold = int(round(cfg.holdout_frac * n)) if n >= 10 else (1 if n >= 3 else 0)
    hold, fit = perm[:n_hold], perm[n_hold:]
    bank_cfg = BankConfig(lrs=tuple(cfg.fast_lrs), weight_decay=cfg.weight_decay, dropout=cfg.dropout)
    bank = HeadBank(L * d, num_classes, len(bank_cfg.lrs), dropout=cfg.dropout, seed=ctx.seed).to(device)
    batch = min(cfg.fast_batch, len(fit))
    by_epochs = round(cfg.fast_epochs * len(fit) / batch)
    iters = cfg.fast_iters or int(min(cfg.fast_max_iters, max(cfg.fast_min_iters, by_epochs)))
    warm = max(1, int(round(iters * cfg.warmup_frac)))

    def grid(idx):  # (B, L*D, h, w): blocks concatenated on channels, oldest first (= resize_concat)
        x = feats[idx].to(device, non_blocking=True).float()
        return x.permute(0, 1, 4, 2, 3).reshape(len(idx), L * d, h, w)

    train_head_bank(bank, grid, labels, fit, bank_cfg, iters=iters, batch=batch, warm=warm, generator=gen,
                    device=device, progress=ctx.progress)
    holdout = bank_miou(bank_logits(bank, grid, labels, hold, device), num_classes, len(bank)) if n_hold else []
    # nothing to select on (too few images): the protocol's own learning rate, or the closest in the bank
    closest = min(range(len(bank_cfg.lrs)), key=lambda i: abs(bank_cfg.lrs[i] - cfg.lr))
    best = select_best(holdout, SELECTION, fallback=closest)
    stride = max(1, int(round(size * cfg.fast_stride_frac)))
    model = build_segmentor(enc, num_classes, n_last_blocks=n_last, dropout=cfg.dropout, crop_size=(size, size),
                            test_mode="slide", stride=(stride, stride))
    model.decode_head.load_state_dict(bank.export(best))
    model.to(device)
    params = {
        "train_aug": f"none (cached features of {size}x{size} resized images)",
        "fast.size": size, "fast.cached_blocks": cached, "fast.iters": iters, "fast.batch": batch,
        "fast.optimizer": f"AdamW(wd={cfg.weight_decay:g})",
        "fast.schedule": f"linear-warmup {warm} + poly(1.0)",
        "fast.loss_resolution": f"{up}x patch grid ({up * h}x{up * w})",
        "fast.holdout_mIoU": ",".join(f"{v:.2f}" for v in holdout) or "n/a (too few images)",
        "fast.best_lr": bank_cfg.lrs[best], "n_train": len(fit), "n_holdout": n_hold,
        "test_mode": f"resize {size}x{size}, slide crop {size} stride {stride}",
    }
    return Trained(model, (size, size), majority, params)


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


@timing.timed("evaluation")
@torch.no_grad()
def run_test(ctx: EvalContext, trained: Trained, data, cfg: SegConfig, multiscale: bool, indices=None):
    """Val split on the fly through mmseg's test pipeline (TTA for +ms) and IoUMetric
    -> (metrics, per-class table, examples)."""
    from mmengine.dataset import pseudo_collate
    from mmseg.evaluation import IoUMetric
    from mmseg.models import SegTTAModel
    from torch.utils.data import DataLoader, Subset
    from tqdm.auto import tqdm

    dataset = data.dataset("val", test_pipeline(cfg, trained.test_size, multiscale), test_mode=True)
    if indices is not None:
        dataset = Subset(dataset, indices)
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=ctx.num_workers, collate_fn=pseudo_collate)
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
    scores = quiet_compute(metric)
    scores[PER_IMAGE_COUNTS] = np.stack([np.stack([np.asarray(r[0], dtype=np.float64), np.asarray(r[1], dtype=np.float64)])
                                         for r in metric.results]) if metric.results else np.zeros((0, 2, 0))
    # mmseg's results per image: (area_intersect, area_union, area_pred_label, area_label)
    scores[PER_IMAGE_ACC_COUNTS] = np.stack([np.stack([np.asarray(r[0], dtype=np.float64), np.asarray(r[3], dtype=np.float64)])
                                             for r in metric.results]) if metric.results else np.zeros((0, 2, 0))
    return scores, per_class, examples


__all__ = ["SegConfig", "SegProbe", "run_test", "test_pipeline", "train_fast"]
