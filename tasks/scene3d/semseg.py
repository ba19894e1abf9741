"""scannet-3d-semseg / synth-scannet-3d-semseg: Lexicon3D's linear probe on lifted point features."""
from __future__ import annotations

import numpy as np
import torch

from bench.data.scannet import CLASSES_20, IGNORE
from bench.task import ItemScores, Task, TaskResult
from heads.scene3d.semseg import SemsegScene, scene_confusions, semseg_metrics, train_probe
from tasks.scene3d.config import SemsegConfig, default_config
from tasks.scene3d.scenes import SceneSet


def semseg_items(scenes) -> list[SemsegScene]:
    """label[mask_full], then drop -1 (dino_feature.py)."""
    out = []
    for s in scenes:
        label = torch.from_numpy(s.points.labels)[s.keep]
        feat = s.feat[s.keep]
        ok = label != IGNORE
        if ok.any():
            out.append(SemsegScene(feat[ok], label[ok]))
    return out


class Semseg3D(Task):
    Config = SemsegConfig

    def __init__(self, meta, synthetic: bool = False):
        super().__init__(meta)
        self.synthetic = synthetic

    def default_config(self):
        return default_config("semseg", self.synthetic)

    def run(self, ctx, cfg: SemsegConfig) -> TaskResult:
        data = SceneSet(ctx, cfg)
        train, val = semseg_items(data.scenes("train")), semseg_items(data.scenes("val"))
        data.log_cache()
        dim = train[0].feat.shape[1]
        ctx.log_params(points_train=sum(len(s.label) for s in train), points_val=sum(len(s.label) for s in val),
                       feature_dim=dim)
        model = train_probe(train, dim, epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay,
                            double_softmax=cfg.double_softmax, seed=cfg.train_seed, log=ctx.log_metrics)
        confs = scene_confusions(model, val)
        metrics, iou = semseg_metrics(confs.sum(0))
        counts = torch.bincount(torch.cat([s.label for s in train]), minlength=20).float()
        majority = int(counts.argmax())
        base, _ = evaluate_constant(val, majority)
        metrics["majority_accuracy"] = base
        breakdown = {f"class:{CLASSES_20[c]}": {"iou": 100 * float(iou[c])} for c in range(20)}
        return TaskResult({k: float(v) for k, v in metrics.items()}, breakdown, items=scene_items(confs))


def scene_items(confs: np.ndarray) -> dict[str, ItemScores]:
    """Per validation scene, per class: (true positives, union) and (true positives, labelled points), so
    a bootstrap over scenes recomputes mIoU / mAcc over all 20 classes and the point accuracy."""
    confs = confs.astype(np.float64)
    tp = np.diagonal(confs, axis1=1, axis2=2)
    labelled, predicted = confs.sum(2), confs.sum(1)
    iou, acc = np.stack([tp, labelled + predicted - tp], 1), np.stack([tp, labelled], 1)
    return {"miou": ItemScores(iou, "miou_all", 100.0), "macc": ItemScores(acc, "miou_all", 100.0),
            "accuracy": ItemScores(acc, "ratio", 100.0)}


def evaluate_constant(val, cls: int) -> tuple[float, int]:
    total = sum(len(s.label) for s in val)
    hit = sum(int((s.label == cls).sum()) for s in val)
    return 100.0 * hit / max(total, 1), total
