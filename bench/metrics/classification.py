"""Classification metrics (percent, higher is better): top-1, top-5, mean-per-class accuracy.

`ClassificationMeter` accumulates them over batches for many heads at once, so a bank of 52 linear
heads is scored on ImageNet-val without ever holding the (N, heads, classes) logits in memory.
"""
from __future__ import annotations

import torch


def chance_top1(num_classes: int) -> float:
    """Top-1 of a uniform random guess (percent): the floor every trained head must beat."""
    return 100.0 / num_classes


def topk_hits(scores: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    """(N,) bool: the target is among the k highest scores (k is capped at the number of classes)."""
    top = scores.topk(min(k, scores.shape[-1]), dim=-1).indices
    return (top == targets[..., None]).any(-1)


def topk_accuracy(scores: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    return 100.0 * topk_hits(scores, targets, k).float().mean().item()


def mean_per_class_accuracy(pred: torch.Tensor, targets: torch.Tensor, num_classes: int) -> float:
    """Mean over the classes present in `targets` of each class's recall (percent)."""
    correct = torch.zeros(num_classes, dtype=torch.float64)
    count = torch.zeros(num_classes, dtype=torch.float64)
    correct.index_add_(0, targets, (pred == targets).double())
    count.index_add_(0, targets, torch.ones_like(targets, dtype=torch.float64))
    present = count > 0
    return 100.0 * (correct[present] / count[present]).mean().item()


class ClassificationMeter:
    """Streaming top-1 / top-5 / mean-per-class accuracy for H heads scored on the same samples."""

    def __init__(self, num_heads: int, num_classes: int, topk: int = 5):
        self.num_classes, self.topk = num_classes, min(topk, num_classes)
        self.n = 0
        self.top1 = torch.zeros(num_heads, dtype=torch.float64)
        self.top5 = torch.zeros(num_heads, dtype=torch.float64)
        self.class_correct = torch.zeros(num_heads, num_classes, dtype=torch.float64)
        self.class_count = torch.zeros(num_classes, dtype=torch.float64)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """logits (B, H, C) (or (B, C) for one head); targets (B,)."""
        if logits.dim() == 2:
            logits = logits[:, None]
        targets = targets.to(logits.device)
        top = logits.topk(self.topk, dim=-1).indices  # (B, H, k)
        hit = top == targets[:, None, None]
        hit1 = hit[..., 0].double().cpu()  # (B, H)
        self.top1 += hit1.sum(0)
        self.top5 += hit.any(-1).double().sum(0).cpu()
        t = targets.cpu()
        self.class_correct.index_add_(1, t, hit1.T.contiguous())
        self.class_count.index_add_(0, t, torch.ones_like(t, dtype=torch.float64))
        self.n += targets.shape[0]

    def results(self) -> list[dict[str, float]]:
        """Per head: top1, top5, mean_per_class (percent)."""
        present = self.class_count > 0
        per_class = self.class_correct[:, present] / self.class_count[present]
        return [{"top1": 100.0 * float(self.top1[h]) / self.n,
                 "top5": 100.0 * float(self.top5[h]) / self.n,
                 "mean_per_class": 100.0 * float(per_class[h].mean())}
                for h in range(self.top1.shape[0])]


__all__ = ["ClassificationMeter", "chance_top1", "mean_per_class_accuracy", "topk_accuracy", "topk_hits"]
