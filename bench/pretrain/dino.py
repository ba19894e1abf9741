"""DINO (Caron et al., ICCV 2021): projection head, self-distillation loss, schedules.

The student sees every crop, the EMA teacher only the global ones; the loss is the cross-entropy
between the teacher's centred, sharpened distribution (temperature `teacher_temp`) and the student's
(temperature `student_temp`) over all (teacher global, student crop) pairs of different crops. The
centre is an EMA of the teacher's batch mean (momentum `center_momentum`): centring prevents one
prototype from dominating, sharpening prevents the uniform collapse.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class DINOHead(nn.Module):
    """3-layer MLP -> L2-normalised bottleneck -> weight-normalised prototypes (weight norm fixed at 1)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int, bottleneck_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim), nn.GELU(),
                                 nn.Linear(hidden_dim, bottleneck_dim))
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.parametrizations.weight.original0.data.fill_(1.0)
        self.last_layer.parametrizations.weight.original0.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))


class DINOLoss(nn.Module):
    def __init__(self, out_dim: int, n_crops: int, student_temp: float, center_momentum: float):
        super().__init__()
        self.n_crops, self.student_temp, self.center_momentum = n_crops, student_temp, center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        """`student_out` (n_crops*B, K), `teacher_out` (2*B, K), crops stacked crop-major."""
        student = (student_out / self.student_temp).chunk(self.n_crops)
        teacher = F.softmax((teacher_out - self.center) / teacher_temp, dim=-1).detach().chunk(2)
        total, pairs = student_out.new_zeros(()), 0
        for it, t in enumerate(teacher):
            for iv, s in enumerate(student):
                if iv == it:
                    continue  # never the same crop
                total = total + torch.sum(-t * F.log_softmax(s, dim=-1), dim=-1).mean()
                pairs += 1
        self.update_center(teacher_out)
        return total / pairs

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        self.center.mul_(self.center_momentum).add_(teacher_out.mean(0, keepdim=True), alpha=1 - self.center_momentum)


def cosine(step: int, total: int, start: float, end: float, warmup: int = 0, warmup_from: float = 0.0) -> float:
    """Linear warmup from `warmup_from` to `start` over `warmup` steps, then cosine from `start` to `end`."""
    if step < warmup:
        return warmup_from + (start - warmup_from) * step / max(1, warmup)
    t = (step - warmup) / max(1, total - warmup)
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * min(1.0, t)))


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    for pt, ps in zip(teacher.parameters(), student.parameters()):
        pt.mul_(momentum).add_(ps.detach(), alpha=1 - momentum)


def entropy_stats(teacher_out: torch.Tensor, center: torch.Tensor, temp: float) -> dict[str, float]:
    """Collapse monitors: the teacher's mean per-sample entropy and the entropy of its batch mean (both
    in nats; a collapse to one prototype sends both to 0, the uniform collapse both to log K)."""
    p = F.softmax((teacher_out - center) / temp, dim=-1)
    per = -(p * p.clamp_min(1e-12).log()).sum(-1).mean()
    mean = p.mean(0)
    return {"teacher_entropy": float(per), "teacher_batch_entropy": float(-(mean * mean.clamp_min(1e-12).log()).sum())}


__all__ = ["DINOHead", "DINOLoss", "cosine", "ema_update", "entropy_stats"]
