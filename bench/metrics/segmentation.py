"""Segmentation metrics around mmseg's `IoUMetric` (mIoU, mAcc, aAcc in %): the per-class table, the
majority-class floor, and the held-out mIoU of every member of a head bank (the fast variant's
selection score). mmseg and the datasets are imported when used."""
from __future__ import annotations

import logging
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

IGNORE_INDEX = 255


def quiet_compute(metric) -> dict:
    """IoUMetric.compute_metrics without its per-class table on stdout (that goes to an artifact)."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        return metric.compute_metrics(metric.results)
    finally:
        logger.setLevel(level)


def per_class_table(metric) -> dict[str, dict]:
    """class -> {"IoU", "Acc" (%, None where undefined), "gt_pixels"} from a processed IoUMetric."""
    from mmseg.evaluation import IoUMetric

    inter, union, pred, label = (sum(r[i] for r in metric.results) for i in range(4))
    ret = IoUMetric.total_area_to_metrics(inter, union, pred, label, ["mIoU"])
    iou, acc = np.asarray(ret["IoU"], dtype=float), np.asarray(ret["Acc"], dtype=float)
    classes = metric.dataset_meta["classes"]
    return {c: {"IoU": None if np.isnan(iou[i]) else round(float(iou[i]) * 100, 2),
                "Acc": None if np.isnan(acc[i]) else round(float(acc[i]) * 100, 2),
                "gt_pixels": int(label[i])} for i, c in enumerate(classes)}


def per_class_breakdown(table: dict[str, dict]) -> dict[str, dict[str, float]]:
    """`TaskResult.breakdown` rows "class:<name>" -> {"IoU", "Acc"}; undefined values (a class with
    neither ground truth nor predictions) are left out, and a class with neither value is omitted."""
    out = {}
    for name, row in table.items():
        values = {k: float(row[k]) for k in ("IoU", "Acc") if row.get(k) is not None}
        if values:
            out[f"class:{name}"] = values
    return out


def majority_class(data, num_classes: int, cap: int = 2000) -> int:
    """Most frequent training class (evenly spaced subset of at most `cap` annotations)."""
    from bench.data.segmentation import load_label_maps

    n = len(data.dataset("train"))
    idx = np.unique(np.linspace(0, n - 1, min(n, cap)).round().astype(int))
    counts = np.zeros(num_classes, np.int64)
    for seg in load_label_maps(data, "train", indices=idx):
        v = seg[seg != IGNORE_INDEX]
        counts += np.bincount(v.ravel(), minlength=num_classes)[:num_classes]
    return int(counts.argmax())


def majority_baseline(data, majority: int, indices=None) -> float:
    """IoUMetric mIoU of the constant prediction `majority` over the val annotations."""
    from mmseg.evaluation import IoUMetric

    from bench.data.segmentation import load_label_maps

    metric = IoUMetric(iou_metrics=["mIoU"], prefix="seg")
    metric.dataset_meta = data.metainfo()
    for seg in load_label_maps(data, "val", indices=indices):
        gt = torch.from_numpy(seg.astype(np.int64))
        metric.process({}, [{"pred_sem_seg": {"data": torch.full_like(gt, majority)}, "gt_sem_seg": {"data": gt}}])
    return float(quiet_compute(metric)["mIoU"])


@torch.no_grad()
def bank_miou(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int, n_heads: int) -> list[float]:
    """Per-head mIoU (%) pooled over images, IoUMetric's definition; `batches` yields (logits
    (B, G, K, h, w), labels (B, H, W)), logits upsampled bilinearly to the labels. NaN for a head
    without a defined class IoU."""
    from mmseg.evaluation import IoUMetric

    areas = [None] * n_heads
    for logits, y in batches:
        for g in range(n_heads):
            pred = F.interpolate(logits[:, g], size=y.shape[-2:], mode="bilinear", align_corners=False).argmax(1)
            for pi, yi in zip(pred, y):
                a = IoUMetric.intersect_and_union(pi, yi, num_classes, IGNORE_INDEX)
                areas[g] = a if areas[g] is None else tuple(u + v for u, v in zip(areas[g], a))
    out = []
    for a in areas:
        if a is None:
            out.append(float("nan"))
            continue
        iou = (a[0] / a[1]).cpu().numpy()
        out.append(float(np.nanmean(iou) * 100) if not np.all(np.isnan(iou)) else float("nan"))
    return out


__all__ = ["IGNORE_INDEX", "bank_miou", "majority_baseline", "majority_class", "per_class_breakdown",
           "per_class_table", "quiet_compute"]
