"""SimCLR's NT-Xent (Chen et al., ICML 2020): the fallback objective when DINO does not learn in the budget.

Two augmented views of each image; their projections are pulled together and pushed away from the
other 2B - 2 views of the batch (cross-entropy over cosine similarities / temperature).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """SimCLR's MLP projection (Linear - BN-free GELU - Linear); features for evaluation are taken before it."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean NT-Xent loss of the 2B views (z1[i] and z2[i] are the positive pair)."""
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    n = len(z1)
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def alignment_stats(z1: torch.Tensor, z2: torch.Tensor) -> dict[str, float]:
    """Collapse monitors: mean cosine of positive pairs and of all other pairs (equal = collapsed)."""
    a, b = F.normalize(z1.detach(), dim=-1), F.normalize(z2.detach(), dim=-1)
    cos = a @ b.t()
    n = len(a)
    off = (cos.sum() - cos.diag().sum()) / max(1, n * n - n)
    return {"positive_cosine": float(cos.diag().mean()), "negative_cosine": float(off)}


__all__ = ["ProjectionHead", "alignment_stats", "nt_xent"]
