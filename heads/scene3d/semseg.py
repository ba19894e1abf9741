"""Lexicon3D's 3D semantic-segmentation probe (`evals/segmentation`): Linear(C, 20) per point,
softmax then CrossEntropyLoss (the double softmax, quirk 3, unless turned off), Adam, one scene per
step, and `SemsegMeter` over all val points of all scenes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

NUM_CLASSES = 20


class LinearProbe3D(nn.Module):
    def __init__(self, dim: int, classes: int = NUM_CLASSES, double_softmax: bool = True):
        super().__init__()
        self.fc = nn.Linear(dim, classes)
        self.double_softmax = double_softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x.float())
        return torch.softmax(out / 1, dim=-1) if self.double_softmax else out


@dataclass
class SemsegScene:
    feat: torch.Tensor  # (M, C) fp16: lifted features of kept points
    label: torch.Tensor  # (M,) 0..19 (ignore already dropped)


def train_probe(train: list[SemsegScene], dim: int, *, epochs: int, lr: float, weight_decay: float,
                double_softmax: bool, seed: int, log=None) -> LinearProbe3D:
    torch.manual_seed(seed)
    model = LinearProbe3D(dim, double_softmax=double_softmax)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        total = 0.0
        for i in torch.randperm(len(train), generator=g).tolist():  # batch = one scene, shuffled
            s = train[i]
            loss = loss_fn(model(s.feat), s.label)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        if log is not None:
            log({"semseg_train_loss": total / max(1, len(train))}, epoch)
    return model


def confusion(pred: np.ndarray, label: np.ndarray, classes: int = NUM_CLASSES, ignore: int = 255) -> np.ndarray:
    ok = label != ignore
    return np.bincount(label[ok] * classes + pred[ok], minlength=classes * classes).reshape(classes, classes)


def semseg_metrics(conf: np.ndarray) -> dict[str, float]:
    """SemsegMeter: Acc, mAcc, mIoU over all 20 classes (a class never seen nor predicted counts 0),
    plus mIoU over the classes present in the ground truth (`miou_present`, diagnostic)."""
    tp = np.diag(conf).astype(float)
    fp, fn = conf.sum(0) - tp, conf.sum(1) - tp
    iou = tp / np.maximum(tp + fp + fn, 1e-8)
    recall = tp / np.maximum(tp + fn, 1e-8)
    present = conf.sum(1) > 0
    return {"accuracy": 100 * tp.sum() / max(conf.sum(), 1), "miou": 100 * iou.mean(), "macc": 100 * recall.mean(),
            "miou_present": 100 * iou[present].mean() if present.any() else 0.0,
            "classes_present": float(present.sum())}, iou


@torch.no_grad()
def scene_confusions(model: LinearProbe3D, scenes: list[SemsegScene]) -> np.ndarray:
    """(scenes, 20, 20) confusion matrices: summed, the metrics; per scene, the bootstrap's items."""
    confs = [confusion(model(s.feat).argmax(-1).numpy(), s.label.numpy()) for s in scenes]
    return np.stack(confs) if confs else np.zeros((0, NUM_CLASSES, NUM_CLASSES), np.int64)
