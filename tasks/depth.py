"""Monocular depth probes on frozen features (paper Table 1; DINOv2 / DINOv3 depth protocol).

Heads (heads/depth.py, heads/dpt.py) predict depth as a classification over 256 uniform bins in
[1e-3, max depth] with DINOv2's "linear" normalisation, trained with the scale-invariant log loss
(SigLoss) on cached patch + CLS features of the last 4 blocks (no augmentation):
  linear - BN + 1x1 conv on the last block ("last") or the last 4 blocks ("last4"), each patch map
           concatenated with its CLS token; a bank of learning rates x layer choices trains together.
  dpt    - DPT head (reassemble 4 blocks -> fusion -> head); a bank of learning rates.
The bank member with the lowest RMSE on a split held out from train (whole scenes / drives) is
evaluated on the test split: prediction upsampled (bilinear) to the ground-truth resolution, metrics
per image then averaged (NYU: Eigen crop, 10 m; KITTI: KB crop 352x1216, Garg crop, 80 m).
The constant predictor (train-set mean depth) is reported beside it as a floor.

Env overrides: BENCH_DEPTH_ITERS, BENCH_DEPTH_BATCH, BENCH_DEPTH_MAX_TRAIN (train images; 0 = all),
BENCH_DEPTH_THREADS (CPU threads while heads train; default 1 on machines with <= 4 cores, where a
second OpenMP thread competing with other work slows the small matmuls down several-fold).
See docs/depth.md.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from bench.data.kitti import KITTI_MAX_DEPTH, KITTIDepth
from bench.data.nyu import (NYU_MAX_DEPTH, DepthInputTransform, IndexView, NYUDepth, encoder_input_size,
                            held_out_split)
from bench.features import FeatureSpec
from bench.metrics.depth import DEPTH_METRICS, DepthEvalConfig, DepthMeter, crop_mask
from heads.depth import (BinSpec, DepthFeatures, LinearDepthHeads, ModuleBank, TrainConfig, predict, seeded,
                         train_bank)
from heads.dpt import DPTDepthHead
from tasks import Metric, RealData, SyntheticData, Task, register_task

ITERS_ENV, BATCH_ENV, MAX_TRAIN_ENV = "BENCH_DEPTH_ITERS", "BENCH_DEPTH_BATCH", "BENCH_DEPTH_MAX_TRAIN"
THREADS_ENV = "BENCH_DEPTH_THREADS"
LAYER_CHOICES = {"last": 1, "last4": 4}

METRICS = DEPTH_METRICS + (
    Metric("rmse_constant_baseline", False,
           "RMSE (m) of predicting the train-set mean depth everywhere (same crop and averaging): a floor"),
    Metric("val_rmse", False, "RMSE (m) of the selected bank member on the held-out part of train "
                              "(at the training-target resolution)"),
    Metric("val_rmse_constant_baseline", False, "RMSE (m) of the train-set mean depth on the held-out part of train"),
)


@dataclass(frozen=True)
class DepthProbeConfig:
    dataset: str  # nyu | kitti
    head: str  # linear | dpt
    lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3)
    layer_choices: tuple[str, ...] = ("last", "last4")  # linear heads only; DPT always reads 4 blocks
    use_cls: bool = True  # linear: concat CLS to each patch; DPT: readout "project"
    linear_upsample: int = 4  # DINOv2 BNHead upsample=4
    linear_bn: bool = True
    dpt_channels: int = 256  # DINOv2 DPT "channels"
    dpt_head_upsample: bool = True  # False: output at 8x the patch grid (CPU-sized synthetic twin only)
    n_bins: int = 256
    min_depth: float = 1e-3
    train: TrainConfig = field(default_factory=TrainConfig)
    val_fraction: float = 0.1
    max_train_images: int = 0  # 0 = all; else an evenly strided subset of the (sorted) train list
    flip_tta: bool = False
    examples: int = 4
    eval_batch: int = 8

    @property
    def max_depth(self) -> float:
        return NYU_MAX_DEPTH if self.dataset == "nyu" else KITTI_MAX_DEPTH

    @property
    def crop(self) -> str:
        return "eigen" if self.dataset == "nyu" else "garg"

    def with_env(self) -> "DepthProbeConfig":
        cfg, train = self, self.train
        if os.environ.get(ITERS_ENV):
            train = replace(train, iterations=int(os.environ[ITERS_ENV]))
        if os.environ.get(BATCH_ENV):
            train = replace(train, batch_size=int(os.environ[BATCH_ENV]))
        if os.environ.get(MAX_TRAIN_ENV):
            cfg = replace(cfg, max_train_images=int(os.environ[MAX_TRAIN_ENV]))
        return replace(cfg, train=train)


# Real data: DINOv2 trains 38,400 iterations x 16 images; here a fixed 8,000 x 16 over an evenly strided
# 4,000-frame subset (neighbouring video frames are near duplicates; 4 blocks of patch features for all
# ~24k frames would not fit in memory for ViT-g/7B). Override with the env variables above.
REAL_TRAIN = TrainConfig(iterations=8000, batch_size=16, warmup_fraction=0.1, sigloss_warmup=100)
# Synthetic twin: sized for 2 CPU cores (see docs/depth.md for timings).
SYNTH_LINEAR_TRAIN = TrainConfig(iterations=150, batch_size=4, warmup_fraction=0.1, sigloss_warmup=10,
                                 target_stride=4)
SYNTH_DPT_TRAIN = TrainConfig(iterations=60, batch_size=2, warmup_fraction=0.1, sigloss_warmup=5, target_stride=2)

CONFIGS = {
    "nyud-depth-linear": DepthProbeConfig("nyu", "linear", train=REAL_TRAIN, max_train_images=4000, flip_tta=True),
    "nyud-depth-dpt": DepthProbeConfig("nyu", "dpt", train=REAL_TRAIN, max_train_images=4000, flip_tta=True),
    "kitti-depth-linear": DepthProbeConfig("kitti", "linear", train=REAL_TRAIN, max_train_images=4000,
                                           flip_tta=True),
    "kitti-depth-dpt": DepthProbeConfig("kitti", "dpt", train=REAL_TRAIN, max_train_images=4000, flip_tta=True),
    "synth-depth-linear": DepthProbeConfig("nyu", "linear", lrs=(1e-3, 3e-3, 1e-2, 3e-2), train=SYNTH_LINEAR_TRAIN,
                                           linear_upsample=1),
    "synth-depth-dpt": DepthProbeConfig("nyu", "dpt", lrs=(1e-3, 3e-3), train=SYNTH_DPT_TRAIN, dpt_channels=32,
                                        dpt_head_upsample=False),
}


def protocol(cfg: DepthProbeConfig) -> dict:
    return {
        "protocol": f"dinov2-depth-{cfg.head}",
        "head": cfg.head,
        "bins": f"{cfg.n_bins}-uniform-linear-norm",
        "min_depth": cfg.min_depth,
        "max_depth": cfg.max_depth,
        "loss": "sigloss-sqrt(var(g)+0.15*mean(g)^2)",
        "features": "frozen-patches+cls-last4-blocks-cached",
        "eval_crop": {"eigen": "eigen-45:471x41:601", "garg": "kb352x1216+garg"}[cfg.crop],
        "averaging": "per-image-then-mean",
        "selection": "bank-best-val-rmse(heldout-groups-of-train)",
    }


# --- data ----------------------------------------------------------------------------------------------

def _datasets(cfg: DepthProbeConfig, root: Path):
    cls = NYUDepth if cfg.dataset == "nyu" else KITTIDepth
    return cls(root, "train"), cls(root, "test")


def _targets(view, size: tuple[int, int], progress: bool) -> torch.Tensor:
    """Train ground truth resized (nearest) to the encoder input size, kept in dataset units (uint16)."""
    out = torch.empty((len(view), *size), dtype=torch.int32)
    for i in tqdm(range(len(view)), desc="depth targets", unit="img", disable=not progress, leave=False):
        raw = torch.from_numpy(view.raw_depth(i).astype(np.int32))[None, None].float()
        out[i] = F.interpolate(raw, size=size, mode="nearest-exact")[0, 0].to(torch.int32)
    return out


def _bank(cfg: DepthProbeConfig, embed_dim: int, bins: BinSpec, seed: int):
    """Banks (one per layer choice for linear heads, one for DPT), their lrs, and per-head names."""
    banks, lrs, names, meta = [], [], [], []
    if cfg.head == "linear":
        for choice in cfg.layer_choices:
            banks.append(LinearDepthHeads(embed_dim, LAYER_CHOICES[choice], cfg.use_cls, bins,
                                          upsample=cfg.linear_upsample, use_bn=cfg.linear_bn, k=len(cfg.lrs),
                                          seed=seed))
            lrs.append(list(cfg.lrs))
            for lr in cfg.lrs:
                names.append(f"linear-{choice}{'-cls' if cfg.use_cls else ''}-lr{lr:g}")
                meta.append({"bank": len(banks) - 1, "member": len(meta) % len(cfg.lrs), "layers": choice, "lr": lr})
    else:
        heads = []
        for lr in cfg.lrs:
            with seeded(seed):
                heads.append(DPTDepthHead(embed_dim, bins, channels=cfg.dpt_channels,
                                          readout="project" if cfg.use_cls else "ignore",
                                          head_upsample=cfg.dpt_head_upsample))
            names.append(f"dpt-c{cfg.dpt_channels}-lr{lr:g}")
            meta.append({"bank": 0, "member": len(heads) - 1, "layers": "last4", "lr": lr})
        banks.append(ModuleBank(heads))
        lrs.append(list(cfg.lrs))
    return banks, lrs, names, meta


def _val_rmse(bank, data: DepthFeatures, ev: DepthEvalConfig, device, const: float | None = None) -> list[float]:
    """Per-head RMSE on the held-out split: per image at the target resolution, then averaged. With
    `const`, the RMSE of that constant prediction instead (one value)."""
    mask_crop = torch.from_numpy(crop_mask(*data.targets.shape[-2:], ev.crop))
    n_heads = 1 if const is not None else bank.k
    errs: list[list[float]] = [[] for _ in range(n_heads)]
    for s in range(0, len(data), 16):
        idx = torch.arange(s, min(s + 16, len(data)))
        gt = data.targets[idx].float() / data.depth_scale
        valid = (gt > ev.min_depth) & (gt < ev.max_depth) & mask_crop
        if const is not None:
            p = torch.full((1, *gt.shape), float(const))
        else:
            _, pred = next(predict(bank, data.subset(idx.tolist()), len(idx), device, size=tuple(gt.shape[-2:])))
            p = pred[:, :, 0].clamp(ev.min_depth, ev.max_depth)  # (K, B, H, W)
        for j in range(len(idx)):
            v = valid[j]
            if v.any():
                rmse = ((p[:, j][:, v] - gt[j][v]) ** 2).mean(1).sqrt()
                for k in range(n_heads):
                    errs[k].append(float(rmse[k]))
    return [float(np.mean(e)) if e and all(math.isfinite(x) for x in e) else float("inf") for e in errs]


@contextlib.contextmanager
def head_threads(device: torch.device):
    """CPU threads while the heads train (see the module docstring); GPUs are left alone."""
    if device.type != "cpu":
        yield None
        return
    env = os.environ.get(THREADS_ENV)
    want = int(env) if env else (1 if (os.cpu_count() or 1) <= 4 else torch.get_num_threads())
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, want))
    try:
        yield max(1, want)
    finally:
        torch.set_num_threads(old)


# --- evaluate ------------------------------------------------------------------------------------------

def evaluate(ctx, root: Path, cfg: DepthProbeConfig) -> dict[str, float]:
    cfg = cfg.with_env()
    t_start = time.perf_counter()
    enc = ctx.encoder
    pre = enc.preprocess
    train_ds, test_ds = _datasets(cfg, root)
    frame_hw = train_ds.image_size()
    size = encoder_input_size(*frame_hw, pre.resolution, pre.patch_size)
    tf = DepthInputTransform(pre, size)

    n_all = len(train_ds)
    if cfg.max_train_images and n_all > cfg.max_train_images:
        keep = np.linspace(0, n_all - 1, cfg.max_train_images).round().astype(int).tolist()
        train_view = IndexView(train_ds, keep, f"strided-{cfg.max_train_images}", tf)
        groups = [train_ds.groups[i] for i in keep]
    else:
        train_view = IndexView(train_ds, list(range(n_all)), "all", tf)
        groups = train_ds.groups
    spec = FeatureSpec(("patches", "cls"), 4)
    f_train = ctx.features(train_view, train_view.identity(), tf.describe(), spec, "train")
    f_test = ctx.features(test_ds.with_transform(tf), test_ds.identity(), tf.describe(), spec, "test")
    f_flip = None
    if cfg.flip_tta:
        tf_flip = DepthInputTransform(pre, size, flip=True)
        f_flip = ctx.features(test_ds.with_transform(tf_flip), test_ds.identity(), tf_flip.describe(), spec,
                              "test-hflip")
    t_feat = time.perf_counter() - t_start

    tsize = (size[0] // cfg.train.target_stride, size[1] // cfg.train.target_stride)
    targets = _targets(train_view, tsize, ctx.progress)
    all_train = DepthFeatures(f_train["patches"], f_train["cls"], targets, train_ds.depth_scale)
    tr_idx, va_idx = held_out_split(groups, cfg.val_fraction, ctx.seed)
    data_tr, data_va = all_train.subset(tr_idx), all_train.subset(va_idx)

    bins = BinSpec(cfg.n_bins, cfg.min_depth, cfg.max_depth, "linear")
    ev = DepthEvalConfig(cfg.min_depth, cfg.max_depth, cfg.crop)
    banks, lrs, names, meta = _bank(cfg, enc.embed_dim, bins, ctx.seed)
    with head_threads(ctx.device) as threads:
        result = train_bank(banks, lrs, data_tr, cfg.train, seed=ctx.seed, device=ctx.device,
                            progress=ctx.progress, desc=f"{cfg.head} depth heads x{len(names)}")
        val = [v for bank in banks for v in _val_rmse(bank, data_va, ev, ctx.device)]
    val = [float("inf") if d else v for v, d in zip(val, result.diverged)]
    best = int(np.argmin(val))
    head = banks[meta[best]["bank"]].member(meta[best]["member"])

    # constant predictor: mean of the valid train targets
    t = data_tr.targets.float() / data_tr.depth_scale
    valid_t = (t > cfg.min_depth) & (t < cfg.max_depth)
    const = float(t[valid_t].mean())
    val_const = _val_rmse(None, data_va, ev, ctx.device, const=const)[0]

    meter, meter_const = DepthMeter(ev), DepthMeter(ev)
    test_feats = DepthFeatures(f_test["patches"], f_test["cls"])
    flip_feats = DepthFeatures(f_flip["patches"], f_flip["cls"]) if f_flip is not None else None
    examples = []
    flip_iter = predict(head, flip_feats, cfg.eval_batch, ctx.device) if flip_feats is not None else None
    for idx, pred in tqdm(predict(head, test_feats, cfg.eval_batch, ctx.device), desc="depth test",
                          total=math.ceil(len(test_feats) / cfg.eval_batch), disable=not ctx.progress, leave=False):
        if flip_iter is not None:
            _, pflip = next(flip_iter)
            pred = (pred + pflip.flip(-1)) / 2  # flip TTA: average with the un-flipped flipped prediction
        pred = pred[0]  # (B, 1, h, w) of the selected head
        for j, i in enumerate(idx.tolist()):
            gt = test_ds.depth(i)
            up = F.interpolate(pred[j:j + 1], size=gt.shape, mode="bilinear", align_corners=False)[0, 0].numpy()
            meter.update(up, gt)
            meter_const.update(np.full(gt.shape, const, dtype=np.float32), gt)
            if len(examples) < cfg.examples:
                examples.append((i, up, gt))
    metrics = meter.summary()
    metrics["rmse_constant_baseline"] = meter_const.summary()["rmse"]
    metrics["val_rmse"] = val[best]
    metrics["val_rmse_constant_baseline"] = val_const

    bank = [{"name": n, "layers": m["layers"], "lr": m["lr"], "val_rmse": v, "diverged": d,
             "loss_first": (r[0] if r else None), "loss_last": (r[-1] if r else None)}
            for n, m, v, d, r in zip(names, meta, val, result.diverged, result.losses)]
    ctx.log_params(
        dataset=type(train_ds).__name__, frame_hw=f"{frame_hw[0]}x{frame_hw[1]}",
        input_hw=f"{size[0]}x{size[1]}", input_rule="shorter side = encoder resolution; longer side scaled, "
                                                    "both rounded to a multiple of the patch size",
        patch_grid=f"{size[0] // pre.patch_size}x{size[1] // pre.patch_size}",
        train_aug="none (cached features)",
        train_target=f"GT resized (nearest) to {tsize[0]}x{tsize[1]} (input size / {cfg.train.target_stride})",
        n_train_listed=n_all, n_train=len(tr_idx), n_val=len(va_idx), n_test=len(test_ds),
        n_test_evaluated=meter.n_images, max_train_images=cfg.max_train_images, val_fraction=cfg.val_fraction,
        val_split="whole scenes/drives held out of train (single frames if there is one group)",
        bank_size=len(names), bank_lrs=",".join(f"{x:g}" for x in cfg.lrs),
        bank_layers=",".join(cfg.layer_choices) if cfg.head == "linear" else "last4 (DPT)",
        best_head=names[best], best_lr=meta[best]["lr"], best_layers=meta[best]["layers"],
        use_cls=cfg.use_cls, linear_upsample=cfg.linear_upsample, linear_bn=cfg.linear_bn,
        dpt_channels=cfg.dpt_channels if cfg.head == "dpt" else "n/a",
        dpt_head_upsample=cfg.dpt_head_upsample if cfg.head == "dpt" else "n/a", optimizer="AdamW",
        **cfg.train.as_params(), flip_tta=cfg.flip_tta, eval=ev.describe(), constant_depth_m=round(const, 4),
        feature_seconds=round(t_feat, 2), head_train_seconds=round(result.seconds, 2),
        head_threads=threads if threads is not None else "n/a (gpu)",
        **{f"bank.{b['name']}.val_rmse": round(b["val_rmse"], 4) for b in bank},
    )
    if ctx.artifacts_dir is not None:
        ctx.artifact_path("depth_bank.json").write_text(json.dumps(
            {"selected": names[best], "selection": "lowest val_rmse", "heads": bank}, indent=2))
        _plot_examples(ctx.artifact_path("depth_examples.png"), test_ds, examples, cfg.max_depth,
                       f"{enc.label} / {names[best]}")
    return metrics


def _plot_examples(path: Path, ds, examples, max_depth: float, title: str) -> None:
    """Input, ground truth, prediction and |error| (valid pixels) for a few test images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not examples:
        return
    fig, axes = plt.subplots(len(examples), 4, figsize=(13, 2.6 * len(examples)), squeeze=False)
    for row, (i, pred, gt) in zip(axes, examples):
        valid = gt > 0
        vmax = float(np.percentile(gt[valid], 99)) if valid.any() else max_depth
        gt_show = np.where(valid, gt, np.nan)
        err = np.where(valid, np.abs(pred - gt), np.nan)
        row[0].imshow(ds.image(i))
        row[1].imshow(gt_show, cmap="magma_r", vmin=0, vmax=vmax)
        im = row[2].imshow(pred, cmap="magma_r", vmin=0, vmax=vmax)
        fig.colorbar(im, ax=row[2], fraction=0.046, label="m")
        im = row[3].imshow(err, cmap="inferno", vmin=0, vmax=max(vmax / 4, 1e-3))
        fig.colorbar(im, ax=row[3], fraction=0.046, label="m")
        for ax, t in zip(row, ("input", "ground truth", "prediction", "|error|")):
            ax.set_title(t, fontsize=9)
            ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# --- registration ----------------------------------------------------------------------------------------

NYU_HOW = ("NYU Depth v2 in the BTS layout: the 'sync' training frames (~24k, from BTS's "
           "sync.zip, https://github.com/cleinc/bts -> pytorch/README 'NYU Depth V2' download) and "
           "'official_splits/test' (654 test frames, made by BTS's utils/extract_official_train_test_set_from_mat.py "
           "from nyu_depth_v2_labeled.mat), plus the split files nyu_train.txt / nyu_test.txt "
           "(= BTS train_test_inputs/nyudepthv2_{train,test}_files_with_gt.txt; either name works). Layout: "
           "<root>/sync/<scene>/rgb_*.jpg + sync_depth_*.png, <root>/official_splits/test/<scene>/..., "
           "<root>/nyu_train.txt, <root>/nyu_test.txt (BENCH_DATA/nyu by default).")
KITTI_HOW = ("KITTI raw (http://www.cvlibs.net/datasets/kitti/raw_data.php, all 2011_* drives; BTS's "
             "utils/kitti_archives_to_download.txt lists them) unpacked as <root>/<date>/<drive>_sync/image_02/data/, "
             "the annotated depth maps (data_depth_annotated.zip from the KITTI depth benchmark) as "
             "<root>/data_depth_annotated/<drive>_sync/proj_depth/groundtruth/image_02/ (its train/ and val/ "
             "folders may stay), and the Eigen split files eigen_train_files_with_gt.txt / "
             "eigen_test_files_with_gt.txt from BTS's train_test_inputs/ in <root> (BENCH_DATA/kitti by default).")

NYU_DATA = RealData("NYU Depth v2 (BTS layout)", "nyu", "BENCH_NYU", ("sync", "official_splits/test"), NYU_HOW)
KITTI_DATA = RealData("KITTI Eigen split (annotated depth)", "kitti", "BENCH_KITTI",
                      ("data_depth_annotated", "eigen_train_files_with_gt.txt", "eigen_test_files_with_gt.txt"),
                      KITTI_HOW)

_DESCRIPTIONS = {
    "nyud-depth-linear": "NYU Depth v2 (Eigen test split), linear head (bank: lrs x {last, last4}), RMSE",
    "nyud-depth-dpt": "NYU Depth v2 (Eigen test split), DPT head (bank of lrs), RMSE",
    "kitti-depth-linear": "KITTI Eigen split, annotated GT, Garg crop, linear head (bank: lrs x {last, last4}), RMSE",
    "kitti-depth-dpt": "KITTI Eigen split, annotated GT, Garg crop, DPT head (bank of lrs), RMSE",
    "synth-depth-linear": "Synthetic NYU-layout twin (rendered indoor scenes, exact depth), linear head bank, RMSE",
    "synth-depth-dpt": "Synthetic NYU-layout twin (rendered indoor scenes, exact depth), compact DPT head bank, RMSE",
}


def _make(name: str) -> Task:
    cfg = CONFIGS[name]
    synthetic = name.startswith("synth")
    data = SyntheticData("nyu") if synthetic else (NYU_DATA if cfg.dataset == "nyu" else KITTI_DATA)

    def run(ctx, root: Path, _cfg=cfg) -> dict[str, float]:
        return evaluate(ctx, root, _cfg)

    return Task(name=name, group="depth", description=_DESCRIPTIONS[name], data=data, metrics=METRICS,
                headline="rmse",
                protocol={**protocol(cfg), **({"twin_of": f"nyud-depth-{cfg.head}"} if synthetic else {})},
                evaluate=run, paper_task=None if synthetic else name)


for _name in CONFIGS:
    register_task(_make(_name))
