"""Weighted kNN classification, DINO protocol (Caron et al. 2021, `eval_knn.py`).

L2-normalised features, cosine similarity, the top-max(k) neighbours found once (exact search,
`bench.search`: the backend is a runtime choice, logged as `search_backend`), votes weighted by exp(sim / T) and summed per class; every k reads a prefix of the same
neighbour list, so one search scores all k.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from bench import timing
from bench.config import RUNTIME
from bench.metrics.classification import topk_accuracy
from bench.search import cosine_topk


@dataclass(frozen=True)
class KnnConfig:
    ks: tuple[int, ...] = (10, 20, 100, 200)
    temperature: float = 0.07
    search: str = field(default="auto", metadata=RUNTIME)  # exact search backend (bench.search.BACKENDS)


def knn_vote(sims: torch.Tensor, neighbour_labels: torch.Tensor, num_classes: int, k: int,
             temperature: float) -> torch.Tensor:
    """Class scores (Q, C) from the first k neighbours: sum of exp(sim/T) per class."""
    weights = (sims[:, :k] / temperature).exp()
    scores = torch.zeros(sims.shape[0], num_classes, dtype=weights.dtype)
    scores.scatter_add_(1, neighbour_labels[:, :k], weights)
    return scores


@timing.timed("evaluation")
def knn_classify(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                 test_labels: torch.Tensor, num_classes: int, cfg: KnnConfig = KnnConfig(),
                 device: str = "cpu") -> dict[str, float]:
    """Top-1/top-5 accuracy (percent) for every k in `cfg.ks` (k is capped at the train size)."""
    max_k = min(max(cfg.ks), len(train_feats))
    sims, idx = cosine_topk(test_feats, train_feats, max_k, device=device, backend=cfg.search)
    neighbour_labels = train_labels[idx]
    metrics: dict[str, float] = {}
    for k in cfg.ks:
        scores = knn_vote(sims, neighbour_labels, num_classes, min(k, max_k), cfg.temperature)
        metrics[f"top1_k{k}"] = topk_accuracy(scores, test_labels, 1)
        metrics[f"top5_k{k}"] = topk_accuracy(scores, test_labels, 5)
    return metrics


def effective_ks(cfg: KnnConfig, n_train: int) -> dict[int, int]:
    return {k: min(k, n_train) for k in cfg.ks}


__all__ = ["KnnConfig", "effective_ks", "knn_classify", "knn_vote"]
