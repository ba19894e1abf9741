"""Monocular depth metrics (Eigen et al. 2014 set, as computed by BTS / the Monocular-Depth-Estimation
Toolbox that DINOv2's depth evaluation builds on), each paired with its direction.

Every metric is computed per image on the valid, cropped pixels and then averaged over images
(NaN-aware: an image with no valid pixel is skipped). Ground truth is valid where
min_depth < gt < max_depth (strict, as the toolbox does); predictions are clipped to
[min_depth, max_depth] before the logs (BTS; a no-op for bin-decoded depth, which lies in that range).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

from bench.metrics.depth_spec import (DEPTH_METRICS, METRIC_NAMES, METRIC_TABLE, PROBE_METRICS,  # noqa: F401
                                     higher_is_better)


# --- evaluation crops -------------------------------------------------------------------------------

EIGEN_CROP_480x640 = (45, 471, 41, 601)  # rows [45, 471), cols [41, 601) on 480x640 NYU frames
GARG_CROP_FRACTIONS = (0.40810811, 0.99189189, 0.03594771, 0.96405229)  # of (h, h, w, w)


def eigen_crop_box(height: int, width: int) -> tuple[int, int, int, int]:
    """NYU Eigen crop (top, bottom, left, right). Defined on 480x640; other sizes get the same box
    scaled proportionally (rounded), so a resized ground truth is cropped the same way."""
    if (height, width) == (480, 640):
        return EIGEN_CROP_480x640
    t, b, l, r = EIGEN_CROP_480x640
    return (round(t * height / 480), round(b * height / 480), round(l * width / 640), round(r * width / 640))


def garg_crop_box(height: int, width: int) -> tuple[int, int, int, int]:
    """KITTI Garg crop (top, bottom, left, right), int() truncation as in the toolbox/AdaBins."""
    ft, fb, fl, fr = GARG_CROP_FRACTIONS
    return int(ft * height), int(fb * height), int(fl * width), int(fr * width)


def crop_mask(height: int, width: int, crop: str | None) -> np.ndarray:
    """Boolean (h, w) evaluation mask for crop in {"eigen", "garg", None}."""
    mask = np.zeros((height, width), dtype=bool)
    if crop is None or crop == "none":
        mask[:] = True
        return mask
    if crop == "eigen":
        t, b, l, r = eigen_crop_box(height, width)
    elif crop == "garg":
        t, b, l, r = garg_crop_box(height, width)
    else:
        raise ValueError(f"unknown evaluation crop {crop!r}; use 'eigen', 'garg' or None")
    mask[t:b, l:r] = True
    return mask


@dataclass(frozen=True)
class DepthEvalConfig:
    min_depth: float = 1e-3
    max_depth: float = 10.0
    crop: str | None = "eigen"  # eigen (NYU) | garg (KITTI) | None

    def describe(self) -> str:
        return (f"per-image-then-mean; valid {self.min_depth}<gt<{self.max_depth}; crop={self.crop}; "
                f"pred clipped to [{self.min_depth},{self.max_depth}]; pred bilinear-upsampled to GT size")


def valid_mask(gt: np.ndarray, cfg: DepthEvalConfig) -> np.ndarray:
    return (gt > cfg.min_depth) & (gt < cfg.max_depth) & crop_mask(*gt.shape[-2:], cfg.crop)


def compute_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """All metrics for one image from its valid pixels (1-D arrays of equal length, gt > 0)."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if gt.size == 0:
        return {k: float("nan") for k in METRIC_NAMES}
    thresh = np.maximum(gt / pred, pred / gt)
    err = np.log(pred) - np.log(gt)
    silog_sq = np.mean(err ** 2) - np.mean(err) ** 2
    return {
        "rmse": float(np.sqrt(np.mean((gt - pred) ** 2))),
        "abs_rel": float(np.mean(np.abs(gt - pred) / gt)),
        "sq_rel": float(np.mean((gt - pred) ** 2 / gt)),
        "delta1": float(np.mean(thresh < 1.25)),
        "delta2": float(np.mean(thresh < 1.25 ** 2)),
        "delta3": float(np.mean(thresh < 1.25 ** 3)),
        "log10": float(np.mean(np.abs(np.log10(gt) - np.log10(pred)))),
        "rmse_log": float(np.sqrt(np.mean(err ** 2))),
        "silog": float(np.sqrt(max(silog_sq, 0.0)) * 100),  # rounding can make it -1e-17 for a perfect map
    }


def image_metrics(pred: np.ndarray, gt: np.ndarray, cfg: DepthEvalConfig) -> dict[str, float]:
    """Metrics of one (h, w) prediction against its (h, w) ground truth (0 = invalid)."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ: upsample first")
    mask = valid_mask(gt, cfg)
    p = np.clip(pred[mask], cfg.min_depth, cfg.max_depth)
    return compute_metrics(p, gt[mask])


def upsample_to(pred: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """One prediction (h, w), (1, h, w) or (1, 1, h, w) -> (H, W) by bilinear interpolation
    (align_corners=False), the way predictions are brought to the ground-truth resolution."""
    x = pred.reshape(1, 1, *pred.shape[-2:]).float()
    if tuple(x.shape[-2:]) != tuple(size):
        x = torch.nn.functional.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
    return x[0, 0]


class DepthMeter:
    """Accumulates per-image metrics; `summary()` is their NaN-aware mean over images."""

    def __init__(self, cfg: DepthEvalConfig):
        self.cfg = cfg
        self.rows: list[dict[str, float]] = []

    def update(self, pred: np.ndarray | torch.Tensor, gt: np.ndarray) -> dict[str, float]:
        if isinstance(pred, torch.Tensor):
            pred = upsample_to(pred, gt.shape[-2:]).detach().cpu().numpy()
        row = image_metrics(pred, gt, self.cfg)
        self.rows.append(row)
        return row

    def summary(self) -> dict[str, float]:
        out = {}
        for k in METRIC_NAMES:
            vals = np.array([r[k] for r in self.rows], dtype=np.float64)
            vals = vals[~np.isnan(vals)]
            out[k] = float(vals.mean()) if vals.size else float("nan")
        return out

    @property
    def n_images(self) -> int:
        return sum(not np.isnan(r["rmse"]) for r in self.rows)


# --- held-out selection score -------------------------------------------------------------------------

def heldout_rmse(predictions: Iterable[tuple[torch.Tensor, torch.Tensor]], targets: torch.Tensor, depth_scale: float,
                 cfg: DepthEvalConfig, n_heads: int) -> list[float]:
    """Per-head RMSE on a held-out split, at the training-target resolution: per image on the valid,
    cropped pixels, then averaged over images. `predictions` yields (indices, depth (K, B, 1, H, W))
    in order over `targets` (N, H, W, integer dataset units); predictions are clipped to [min, max].
    A head with any non-finite image RMSE gets inf (never selected); NaN when no image has a valid pixel."""
    mask_crop = torch.from_numpy(crop_mask(*targets.shape[-2:], cfg.crop))
    errs: list[list[float]] = [[] for _ in range(n_heads)]
    for idx, pred in predictions:
        gt = targets[idx].float() / depth_scale
        valid = (gt > cfg.min_depth) & (gt < cfg.max_depth) & mask_crop
        p = pred[:, :, 0].clamp(cfg.min_depth, cfg.max_depth)  # (K, B, H, W)
        for j in range(len(idx)):
            v = valid[j]
            if v.any():
                rmse = ((p[:, j][:, v] - gt[j][v]) ** 2).mean(1).sqrt()
                for k in range(n_heads):
                    errs[k].append(float(rmse[k]))
    return [(float(np.mean(e)) if all(math.isfinite(x) for x in e) else math.inf) if e else math.nan for e in errs]


def constant_predictions(value: float, n: int, size: tuple[int, int], batch_size: int = 16):
    """(indices, depth (1, B, 1, H, W)) batches of one constant depth: the floor `heldout_rmse` compares with."""
    for s in range(0, n, batch_size):
        idx = torch.arange(s, min(s + batch_size, n))
        yield idx, torch.full((1, len(idx), 1, *size), float(value))
