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

Knobs: `tasks/depth/config.py` (`--set nyud-depth-linear.train.iterations=200`). See docs/depth.md.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import torch.nn.functional as F
from tqdm.auto import tqdm

from bench.context import EvalContext
from bench.data.fingerprint import files_identity
from bench.data.kitti import KITTIDepth
from bench.data.nyu import (DepthInputTransform, NYUDepth, encoder_input_size, held_out_split, resized_targets,
                            strided_train_view)
from bench.features import FeatureSpec
from bench.metrics.depth import DepthEvalConfig, DepthMeter, constant_predictions, heldout_rmse
from bench.runtime import head_threads
from bench.task import FeatureProbe, FeatureRequest, ItemScores, TaskMeta, TaskResult
from bench.viz import depth_examples
from heads.bank import select_best
from heads.depth import BankResult, BinSpec, DepthFeatures, predict, train_bank
from heads.depth_bank import DepthBank, build_bank
from tasks.depth.config import DepthProbeConfig, default_config

LOADERS = {"nyu": NYUDepth, "kitti": KITTIDepth}
CROPS = {"nyu": "eigen", "kitti": "garg"}
SPEC = FeatureSpec(("patches", "cls"), 4)
HELDOUT_BATCH = 16


def _patches(store):
    """The patch features as rows read on demand from the cache's memory-mapped shards (a split larger
    than memory, e.g. every NYU train frame, is never loaded whole)."""
    return store.column("patches") if hasattr(store, "column") else store["patches"]


class GroundTruth:
    """A split's ground truth (dataset units, cropped) held in memory: `raw_depth(i)` / `depth(i)` as
    the dataset gives them, read once per run."""

    def __init__(self, maps: list[np.ndarray], depth_scale: float):
        self.maps, self.depth_scale = maps, depth_scale

    def __len__(self) -> int:
        return len(self.maps)

    def raw_depth(self, i: int) -> np.ndarray:
        return self.maps[i]

    def depth(self, i: int) -> np.ndarray:
        return self.maps[i].astype(np.float32) / self.depth_scale


def shared_ground_truth(ctx: EvalContext, ds):
    """The ground truth of `ds` (a split or a view of one) through the run's memo: the linear and the
    DPT probe of one run read the same frames, so the second reuses the first's reads. Keyed by the
    depth and image files (paths, sizes, mtimes), the crop and the frames; `ds` itself where the maps
    would not fit the memo (a full-size train split is read on demand as before)."""
    base, idx = (ds.base, list(ds.indices)) if hasattr(ds, "indices") else (ds, list(range(len(ds))))
    memo = ctx.cache.memo
    h, w = base.image_size()
    if not memo.fits(len(idx) * h * w * 2):  # uint16 maps
        return ds
    samples = [base.samples[i] for i in idx]
    files = files_identity([s.depth for s in samples] + [s.image for s in samples], base.root)
    key = {"depth_ground_truth": type(base).__name__, "split": base.split, "crop": base.crop_name,
           "scale": base.depth_scale, **files}
    maps = memo.get(key, lambda: [np.ascontiguousarray(ds.raw_depth(i)) for i in range(len(ds))])
    return GroundTruth(maps, base.depth_scale)


@dataclass
class Fitted:
    bank: DepthBank
    result: BankResult
    val: list[float]  # held-out RMSE per member
    best: int
    const: float  # the constant predictor: mean valid train depth (m)
    val_const: float
    n_train: int
    n_val: int
    target_hw: tuple[int, int]
    threads: int | None


class DepthProbe(FeatureProbe):
    Config = DepthProbeConfig

    def __init__(self, meta: TaskMeta, *, dataset: str, head: str) -> None:
        super().__init__(meta, dataset=dataset, head=head)
        if dataset not in LOADERS or head not in ("linear", "dpt"):
            raise ValueError(f"{meta.name}: dataset must be one of {sorted(LOADERS)} and head linear | dpt")
        self.dataset, self.head = dataset, head

    def default_config(self) -> DepthProbeConfig:
        return default_config(self.dataset, self.head, self.meta.synthetic)

    def eval_config(self, cfg: DepthProbeConfig) -> DepthEvalConfig:
        return DepthEvalConfig(cfg.min_depth, cfg.max_depth, CROPS[self.dataset])

    def inputs(self, ctx: EvalContext, cfg: DepthProbeConfig) -> dict[str, FeatureRequest]:
        loader, pre = LOADERS[self.dataset], ctx.encoder.preprocess
        train_ds, test_ds = loader(ctx.root, "train"), loader(ctx.root, "test")
        size = encoder_input_size(*train_ds.image_size(), pre.resolution, pre.patch_size)
        tf = DepthInputTransform(pre, size)
        view, _ = strided_train_view(train_ds, cfg.max_train_images, tf)
        out = {"train": FeatureRequest(view, SPEC, view.identity(), tf.describe()),
               "test": FeatureRequest(test_ds.with_transform(tf), SPEC, test_ds.identity(), tf.describe())}
        if cfg.flip_tta:
            flip = DepthInputTransform(pre, size, flip=True)
            out["test-hflip"] = FeatureRequest(test_ds.with_transform(flip), SPEC, test_ds.identity(), flip.describe())
        return out

    def fit(self, ctx: EvalContext, cfg: DepthProbeConfig, inputs, features) -> Fitted:
        view = inputs["train"].dataset
        size, stride = view.transform.size, cfg.train.target_stride
        target_hw = (size[0] // stride, size[1] // stride)
        f = features["train"]
        targets = resized_targets(shared_ground_truth(ctx, view), target_hw, ctx.progress)
        all_train = DepthFeatures(_patches(f), f["cls"], targets, view.base.depth_scale)
        tr_idx, va_idx = held_out_split([view.base.groups[i] for i in view.indices], cfg.val_fraction, ctx.seed)
        data_tr, data_va = all_train.subset(tr_idx), all_train.subset(va_idx)
        ev = self.eval_config(cfg)
        bank = build_bank(self.head, ctx.encoder.embed_dim, BinSpec(cfg.n_bins, cfg.min_depth, cfg.max_depth, "linear"),
                          cfg.lrs, layer_choices=cfg.layer_choices, use_cls=cfg.use_cls,
                          linear_upsample=cfg.linear_upsample, linear_bn=cfg.linear_bn, dpt_channels=cfg.dpt_channels,
                          dpt_head_upsample=cfg.dpt_head_upsample, seed=ctx.seed)
        with head_threads(ctx.device, cfg.threads) as threads:
            result = train_bank(bank.banks, bank.lrs, data_tr, cfg.train, seed=ctx.seed, device=ctx.device,
                                progress=ctx.progress, desc=f"{self.head} depth heads x{len(bank.members)}")
            val = [v for module in bank.banks
                   for v in heldout_rmse(predict(module, data_va, HELDOUT_BATCH, ctx.device, size=target_hw),
                                         data_va.target_rows(), data_va.depth_scale, ev, module.k)]
        # no valid held-out pixel at all (tiny sets): the first member that did not diverge
        first = next((i for i, d in enumerate(result.diverged) if not d), None)
        best = select_best(val, self.meta.metric("val_rmse"), excluded=result.diverged, fallback=first)
        const = data_tr.mean_valid_depth(cfg.min_depth, cfg.max_depth)
        val_const = heldout_rmse(constant_predictions(const, len(data_va), target_hw, HELDOUT_BATCH),
                                 data_va.target_rows(), data_va.depth_scale, ev, 1)[0]
        return Fitted(bank, result, [math.inf if d else v for v, d in zip(val, result.diverged)], best, const,
                      val_const, len(tr_idx), len(va_idx), target_hw, threads)

    def score(self, ctx: EvalContext, cfg: DepthProbeConfig, fitted: Fitted, inputs, features) -> TaskResult:
        test, ev, best = inputs["test"].dataset, self.eval_config(cfg), fitted.best
        truth = shared_ground_truth(ctx, test)
        head = fitted.bank.head(best)
        meter, meter_const = DepthMeter(ev), DepthMeter(ev)
        feats = DepthFeatures(_patches(features["test"]), features["test"]["cls"])
        flip = features.get("test-hflip")
        flip_iter = predict(head, DepthFeatures(_patches(flip), flip["cls"]), cfg.eval_batch, ctx.device) \
            if flip is not None else None
        examples = []
        for idx, pred in tqdm(predict(head, feats, cfg.eval_batch, ctx.device), desc="depth test",
                              total=math.ceil(len(feats) / cfg.eval_batch), disable=not ctx.progress, leave=False):
            if flip_iter is not None:
                _, pflip = next(flip_iter)
                pred = (pred + pflip.flip(-1)) / 2  # flip TTA: average with the un-flipped flipped prediction
            pred = pred[0]  # (B, 1, h, w) of the selected head
            for j, i in enumerate(idx.tolist()):
                gt = truth.depth(i)
                up = F.interpolate(pred[j:j + 1], size=gt.shape, mode="bilinear", align_corners=False)[0, 0].numpy()
                meter.update(up, gt)
                meter_const.update(np.full(gt.shape, fitted.const, dtype=np.float32), gt)
                if len(examples) < cfg.examples:
                    examples.append((i, up, gt))
        metrics = {**meter.summary(), "rmse_constant_baseline": meter_const.summary()["rmse"],
                   "val_rmse": fitted.val[best], "val_rmse_constant_baseline": fitted.val_const}
        self._log(ctx, cfg, fitted, inputs, meter.n_images, ev, examples)
        # each test image's metrics (NaN where it has no valid pixel; the metric is their nanmean)
        items = {k: ItemScores(np.array([r[k] for r in meter.rows], dtype=np.float64), "nanmean")
                 for k in meter.summary() if k in metrics and self.meta.metric(k).role == "score"}
        return TaskResult(metrics, items=items)

    def _log(self, ctx: EvalContext, cfg: DepthProbeConfig, fitted: Fitted, inputs, n_evaluated: int,
             ev: DepthEvalConfig, examples) -> None:
        view, test = inputs["train"].dataset, inputs["test"].dataset
        pre, size, (th, tw) = ctx.encoder.preprocess, view.transform.size, fitted.target_hw
        frame_hw = view.base.image_size()
        members, best, res = fitted.bank.members, fitted.best, fitted.result
        heads = [{"name": m.name, "layers": m.layers, "lr": m.lr, "val_rmse": v, "diverged": d,
                  "loss_first": (r[0] if r else None), "loss_last": (r[-1] if r else None)}
                 for m, v, d, r in zip(members, fitted.val, res.diverged, res.losses)]
        ctx.log_params(
            dataset=type(view.base).__name__, frame_hw=f"{frame_hw[0]}x{frame_hw[1]}", input_hw=f"{size[0]}x{size[1]}",
            input_rule="shorter side = encoder resolution; longer side scaled, both rounded to a multiple of the "
                       "patch size",
            patch_grid=f"{size[0] // pre.patch_size}x{size[1] // pre.patch_size}", train_aug="none (cached features)",
            train_target=f"GT resized (nearest) to {th}x{tw} (input size / {cfg.train.target_stride})",
            n_train_listed=len(view.base), n_train_used=len(view), n_train=fitted.n_train, n_val=fitted.n_val,
            n_test=len(test), n_test_evaluated=n_evaluated,
            val_split="whole scenes/drives held out of train (single frames if there is one group)",
            bank_size=len(members), best_head=members[best].name, best_lr=members[best].lr,
            best_layers=members[best].layers, optimizer="AdamW", eval=ev.describe(),
            constant_depth_m=round(fitted.const, 4), head_train_seconds=round(res.seconds, 2),
            head_threads=fitted.threads if fitted.threads is not None else "n/a (gpu)",
            **{f"bank.{h['name']}.val_rmse": round(h["val_rmse"], 4) for h in heads})
        path = ctx.artifact_path("depth_bank.json")
        if path is not None:
            path.write_text(json.dumps({"selected": members[best].name, "selection": "lowest val_rmse",
                                        "heads": heads}, indent=2))
        path = ctx.artifact_path("depth_examples.png")
        if path is not None:
            depth_examples(path, test, examples, cfg.max_depth, f"{ctx.encoder.label} / {members[best].name}")


__all__ = ["DepthProbe", "DepthProbeConfig"]
