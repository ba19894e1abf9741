"""The linear depth heads' training hot path: the batch's BatchNorm normalisation, computed once for
every head of a step, and one autograd node for the 1x1-conv logits of K stacked heads, the
per-image term (CLS half and bias) and DINOv2's "linear" bins decode, with a hand-written backward.

Why: autograd keeps and walks several (positions x K*bins) intermediates (the biased logits, relu,
its mask, the broadcast decode gradient); here the relu is taken in place on the matmul's output and
the backward forms the logits' gradient in one buffer, which then feeds the weight-gradient matmul.
The features are frozen, so no gradient w.r.t. them is formed (no input-gradient matmul). Same
numbers as the autograd path (`tests/test_depth_fused.py`).
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class BatchNormed(NamedTuple):
    """One batch's BatchNorm normalisation (no affine) of the last blocks' patch and CLS channels, with
    the batch statistics. A channel's statistics do not depend on which other channels a head reads,
    so the widest layer choice's normalisation serves every narrower one (`last`)."""

    xp: torch.Tensor  # (B*h*w, C)
    xc: torch.Tensor | None  # (B, C)
    mean_p: torch.Tensor
    var_p: torch.Tensor
    mean_c: torch.Tensor | None
    var_c: torch.Tensor | None

    def last(self, c: int) -> "BatchNormed":
        """The last `c` channels (views)."""
        return BatchNormed(*(t[..., t.shape[-1] - c:] if t is not None else None for t in self))

    @staticmethod
    def of(patches: torch.Tensor, cls: torch.Tensor | None, n_layers: int, eps: float = 1e-5) -> "BatchNormed":
        """Normalise the last `n_layers` blocks of patches (B, h, w, L, D) and cls (B, L, D) over the batch."""
        b, h, w, L, d = patches.shape
        xp, mp, vp = _normalise(patches.reshape(b * h * w, L * d)[:, (L - n_layers) * d:], eps)
        xc = mc = vc = None
        if cls is not None:
            xc, mc, vc = _normalise(cls.reshape(b, L * d)[:, (L - n_layers) * d:], eps)
        return BatchNormed(xp, xc, mp, vp, mc, vc)


def _normalise(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x - mean) / sqrt(var + eps) over the rows of (N, C), biased variance; two passes (column-wise
    `var_mean` on a row-major matrix is several times slower on a CPU; same numbers within float noise)."""
    mean = x.mean(0)
    centred = x - mean
    var = (centred * centred).mean(0)
    return centred.mul_(torch.rsqrt(var + eps)), mean, var


def update_running(running_mean: torch.Tensor, running_var: torch.Tensor, mean: torch.Tensor, var: torch.Tensor,
                   count: int, momentum: float = 0.1) -> None:
    """BatchNorm's running statistics; the variance's unbiased correction uses `count` samples (CLS
    channels stand for `count` broadcast positions)."""
    with torch.no_grad():
        running_mean.lerp_(mean, momentum)
        running_var.lerp_(var * count / max(count - 1, 1), momentum)


class _LinearBinsDepth(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, w, per_image, centers):
        b, knb = per_image.shape
        n, nb = xp.shape[0], centers.numel()
        k = knb // nb
        r = (xp @ w.T).view(b, n // b, knb).add_(per_image[:, None, :]).relu_().view(n, k, nb)
        den = r.sum(-1).add_(0.1 * nb)  # sum_j (relu(l_j) + 0.1)
        depth = (r @ centers).add_(0.1 * centers.sum()).div_(den)  # (N, K)
        ctx.save_for_backward(xp, w, r, depth, den, centers)
        ctx.images = b
        return depth

    @staticmethod
    def backward(ctx, grad):
        xp, w, r, depth, den, centers = ctx.saved_tensors
        n, k, nb = r.shape
        need = ctx.needs_input_grad  # (xp, w, per_image, centers)
        # d depth / d l_j = (c_j - depth) / den where l_j > 0, else 0
        g = (centers - depth[..., None]).mul_((grad / den)[..., None]).mul_(r > 0).view(n, k * nb)
        gx = g @ w if need[0] else None  # never for frozen features
        gw = g.T @ xp if need[1] else None
        gi = g.view(ctx.images, n // ctx.images, k * nb).sum(1) if need[2] else None
        return gx, gw, gi, None


def linear_bins_depth(xp: torch.Tensor, w: torch.Tensor, per_image: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """xp (B*P, C) frozen features (P positions per image), w (K*n_bins, C), per_image (B, K*n_bins)
    -> depth (B*P, K) by the "linear" bins rule: p_j = (relu(l_j) + 0.1) / sum (relu(l) + 0.1),
    depth = sum_j p_j c_j, with l = xp w^T + per_image."""
    return _LinearBinsDepth.apply(xp, w, per_image, centers)
