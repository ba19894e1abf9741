"""What every head bank shares (DINOv2's trick: many heads, each with its own learning rate, trained
on one pass over the same features, the best kept on a split held out from train).

* `select_best(scores, metric, excluded)`: the one selection rule, driven by the metric's direction
  (`Metric.best_index`: first on ties, NaN never chosen); diverged members are excluded.
* `BankAdamW`: AdamW with a learning rate per head, for stacked or per-member parameters.
* `ModuleBank`: independent heads (e.g. DPT) behind the bank interface.
* `seeded`: build modules under a fixed CPU RNG, leaving the global one alone.

The banks keep their fused maths in their own modules (`heads/depth.py`, `heads/seg.py`,
`heads/linear.py`).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from bench.metrics import Metric
from bench.seeding import seeded  # noqa: F401  (the banks build heads under it; re-exported)


def select_best(scores: Sequence[float], metric: Metric, excluded: Sequence[bool] = (),
                fallback: int | None = None) -> int:
    """Index of the best bank member by `metric`'s direction. Members flagged in `excluded` (diverged)
    and scores that are NaN or the metric's worst (inf RMSE) are never chosen. When no member has a
    usable score (e.g. nothing held out), `fallback` is the protocol's choice if it is not excluded;
    otherwise this raises."""
    def out(i: int) -> bool:
        return i < len(excluded) and bool(excluded[i])

    values = [metric.worst if out(i) else float(v) for i, v in enumerate(scores)]
    if any(v == v and v != metric.worst for v in values):
        return metric.best_index(values)
    if fallback is not None and not out(fallback):
        return fallback
    raise RuntimeError(f"no bank member to select by {metric.name}: every one diverged or has no score "
                       f"({', '.join(f'{v:g}' for v in scores) or 'no scores'})")


class ModuleBank(nn.Module):
    """Independent heads (e.g. DPT) behind the bank interface: forward stacks their outputs."""

    def __init__(self, heads: Sequence[nn.Module]):
        super().__init__()
        self.heads = nn.ModuleList(heads)
        self.k = len(self.heads)

    def forward(self, patches: torch.Tensor, cls: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack([h(patches, cls) for h in self.heads])

    def member(self, j: int) -> nn.Module:
        return self.heads[j]


class BankAdamW:
    """AdamW (torch semantics: decoupled decay, bias-corrected moments) where every parameter carries a
    per-head learning rate: stacked parameters (K, ...) get a (K, 1, ...) rate, a member's own
    parameter a scalar. Also clips each head's gradient to its own global norm. `cfg` gives betas,
    eps, weight_decay and grad_clip (e.g. `heads.depth.TrainConfig`)."""

    def __init__(self, slots: list[tuple[nn.Parameter, torch.Tensor, torch.Tensor]], cfg, n_heads: int):
        self.slots = slots  # (param, head ids (K,) or (), base lr broadcastable to param)
        self.cfg, self.n_heads, self.step_count = cfg, n_heads, 0
        self.state = [(torch.zeros_like(p), torch.zeros_like(p)) for p, _, _ in slots]

    def clip(self, alive: torch.Tensor) -> None:
        if not self.cfg.grad_clip:
            return
        sq = torch.zeros(self.n_heads, device=alive.device)
        for p, heads, _ in self.slots:
            if p.grad is not None:
                g2 = p.grad.pow(2)
                sq.index_add_(0, heads.reshape(-1), g2.flatten(1).sum(1) if heads.dim() else g2.sum().reshape(1))
        coef = (self.cfg.grad_clip / (sq.sqrt() + 1e-6)).clamp(max=1.0)
        coef = torch.where(alive, coef, torch.zeros_like(coef))  # a diverged head stops moving
        for p, heads, _ in self.slots:
            if p.grad is not None:
                c = coef[heads]
                p.grad.mul_(c.reshape(c.shape + (1,) * (p.dim() - c.dim())))

    @torch.no_grad()
    def step(self, factor: float) -> None:
        self.step_count += 1
        b1, b2 = self.cfg.betas
        bc1, bc2 = 1 - b1 ** self.step_count, 1 - b2 ** self.step_count
        for (p, _, lr), (m, v) in zip(self.slots, self.state):
            if p.grad is None:
                continue
            g = torch.nan_to_num(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
            lr_t = lr * factor
            p.mul_(1 - lr_t * self.cfg.weight_decay)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / math.sqrt(bc2)).add_(self.cfg.eps)
            p.sub_(lr_t / bc1 * m / denom)


__all__ = ["BankAdamW", "ModuleBank", "seeded", "select_best"]
