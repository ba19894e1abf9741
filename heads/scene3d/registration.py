"""Lexicon3D's partial-scene registration probe (`evals/registration`, REGTR-style): Linear(C, d)
features + sine position embedding of raw xyz, a TransformerCrossEncoder (pre-norm; self-attention
per cloud and cross-attention both ways, shared weights), a correspondence decoder whose values are
the other cloud's xyz, overlap logits, and a weighted Kabsch-Umeyama fit of [R|t] over both
directions' correspondences. Loss: overlap BCE + L1 correspondence loss both ways (no InfoNCE).
`overlap_logits="features+match"` (not REGTR's) adds the decoder's match log-odds to the overlap logits:
a linear read-out of features can only memorise which points overlap, not test whether a point's match
exists (docs/3d.md, "Measured")."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def weighted_kabsch(src: torch.Tensor, tgt: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
    """compute_rigid_transform: the (4, 4) rigid T minimising sum w ||T src - tgt||^2 (SVD, det fix)."""
    w = torch.ones(len(src), dtype=src.dtype) if w is None else w
    w = w / w.sum().clamp_min(1e-12)
    mu_s, mu_t = (w[:, None] * src).sum(0), (w[:, None] * tgt).sum(0)
    cov = (src - mu_s).T @ (w[:, None] * (tgt - mu_t))
    u, _, vh = torch.linalg.svd(cov)
    d = torch.sign(torch.det(vh.T @ u.T))
    D = torch.diag(torch.stack([torch.ones_like(d), torch.ones_like(d), d]))
    R = vh.T @ D @ u.T
    T = torch.eye(4, dtype=src.dtype)
    T[:3, :3], T[:3, 3] = R, mu_t - R @ mu_s
    return T


def apply(T: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return x @ T[:3, :3].T + T[:3, 3]


def se3_compare(pred: torch.Tensor, gt: torch.Tensor) -> tuple[float, float]:
    """REGTR's se3_compare: dT = T_pred T_gt^-1; RRE (deg) = arccos((tr dR - 1) / 2), RTE = ||t_dT||."""
    dT = pred.double() @ torch.linalg.inv(gt.double())
    cos = ((torch.trace(dT[:3, :3]) - 1) / 2).clamp(-1, 1)
    return float(torch.rad2deg(torch.arccos(cos))), float(dT[:3, 3].norm())


def rmse(pred: torch.Tensor, gt: torch.Tensor, pts: torch.Tensor) -> float:
    """RMSE of cloud-1 points mapped by the predicted vs the true transform (the RR@0.05 m rule)."""
    return float((apply(pred.double(), pts.double()) - apply(gt.double(), pts.double())).norm(dim=1).pow(2).mean().sqrt())


class SinePosEmbedding(nn.Module):
    """PositionEmbeddingCoordsSine(n_dim=3, d_model, temperature=10000, scale=2pi) on raw metric xyz."""

    def __init__(self, d_model: int = 256, temperature: float = 10000.0, scale: float = 2 * math.pi):
        super().__init__()
        self.d_model, self.temperature, self.scale = d_model, temperature, scale
        self.num_pos_feats = d_model // 3 // 2 * 2
        self.padding = d_model - self.num_pos_feats * 3

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        xyz = xyz * self.scale
        i = torch.arange(self.num_pos_feats, dtype=torch.float32, device=xyz.device)
        dim_t = self.temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / self.num_pos_feats)
        pos = xyz[..., None] / dim_t
        pos = torch.stack([pos[..., 0::2].sin(), pos[..., 1::2].cos()], -1).flatten(-2)
        return F.pad(pos.flatten(-2), (0, self.padding))


class CrossEncoderLayer(nn.Module):
    """TransformerCrossEncoderLayer (normalize_before, pos-emb added to q, k and v)."""

    def __init__(self, d: int, nhead: int, ffn: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, nhead, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d, nhead, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.ReLU(), nn.Linear(ffn, d))
        self.n1, self.n2, self.n3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, a, b, pa, pb):
        qa, qb = self.n1(a) + pa, self.n1(b) + pb
        a = a + self.self_attn(qa, qa, qa, need_weights=False)[0]
        b = b + self.self_attn(qb, qb, qb, need_weights=False)[0]
        na, nb = self.n2(a) + pa, self.n2(b) + pb
        a2 = a + self.cross_attn(na, nb, nb, need_weights=False)[0]
        b2 = b + self.cross_attn(nb, na, na, need_weights=False)[0]
        return a2 + self.ffn(self.n3(a2)), b2 + self.ffn(self.n3(b2))


def match_log_odds(att: torch.Tensor) -> torch.Tensor:
    """Per query: log mean_j exp(att_ij) over the keys, the log-odds that some key beats a null key of
    logit log M (a SuperGlue-style dustbin). Not shift-invariant on purpose: high only when some key is
    absolutely similar, which is what "is my point in the other cloud" needs (the dual softmax is fooled by
    chance mutual neighbours); ~0 for the near-zero logits of a fresh head, so it adds nothing at init."""
    return torch.logsumexp(att, -1) - math.log(att.shape[-1])


class RegistrationHead(nn.Module):
    def __init__(self, dim: int, d_model: int = 256, nhead: int = 8, layers: int = 6, ffn: int = 1024,
                 zero_init_residual: bool = False, overlap_logits: str = "features"):
        super().__init__()
        if overlap_logits not in ("features", "features+match"):
            raise ValueError(f"overlap_logits must be 'features' or 'features+match', not {overlap_logits!r}")
        self.proj = nn.Linear(dim, d_model)
        self.pos = SinePosEmbedding(d_model)
        self.layers = nn.ModuleList(CrossEncoderLayer(d_model, nhead, ffn) for _ in range(layers))
        if zero_init_residual:  # every layer starts as the identity (not REGTR's init; a config knob, docs/3d.md)
            for layer in self.layers:
                for out in (layer.self_attn.out_proj, layer.cross_attn.out_proj, layer.ffn[2]):
                    nn.init.zeros_(out.weight)
                    nn.init.zeros_(out.bias)
        self.norm = nn.LayerNorm(d_model)
        self.q_proj, self.k_proj = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.overlap = nn.Linear(d_model, 1)
        # "features+match" (not REGTR's): the overlap logit also reads the decoder's match log-odds
        self.match_scale = nn.Parameter(torch.ones(())) if overlap_logits == "features+match" else None
        self.d_model = d_model

    def _corr(self, fa, fb, pa, pb, xyz_b):
        att = (self.q_proj(fa + pa) / math.sqrt(self.d_model)) @ self.k_proj(fb + pb).transpose(-1, -2)
        return torch.softmax(att, -1) @ xyz_b, att

    def _overlap(self, f, att):
        logit = self.overlap(f)[..., 0]
        return logit if self.match_scale is None else logit + self.match_scale * match_log_odds(att)

    def forward(self, f1, x1, f2, x2):
        """Batched clouds (1, N, C) / (1, N, 3) -> (corr_1 in frame 2, corr_2 in frame 1, overlap logits 1, 2)."""
        p1, p2 = self.pos(x1), self.pos(x2)
        a, b = self.proj(f1.float()), self.proj(f2.float())
        for layer in self.layers:
            a, b = layer(a, b, p1, p2)
        a, b = self.norm(a), self.norm(b)
        c1, att1 = self._corr(a, b, p1, p2, x2)
        c2, att2 = self._corr(b, a, p2, p1, x1)
        return c1, c2, self._overlap(a, att1), self._overlap(b, att2)

    def pose(self, x1, x2, c1, c2, o1, o2) -> torch.Tensor:
        """Weighted Kabsch over [x1 -> c1] and [c2 -> x2], weights sigmoid(overlap)."""
        src = torch.cat([x1[0], c2[0]])
        tgt = torch.cat([c1[0], x2[0]])
        w = torch.sigmoid(torch.cat([o1[0], o2[0]]))
        return weighted_kabsch(src.double(), tgt.double(), w.double()).float()


def registration_loss(c1, c2, o1, o2, x1, x2, ov1, ov2, T_gt) -> torch.Tensor:
    """BCE(overlap) + sum_i w_i ||corr_i - T x_i||_1 / sum w, both directions (w = GT overlap)."""
    bce = F.binary_cross_entropy_with_logits(torch.cat([o1[0], o2[0]]), torch.cat([ov1, ov2]).float())
    Ti = torch.linalg.inv(T_gt)
    l1 = ((c1[0] - apply(T_gt, x1[0])).abs().sum(-1) * ov1).sum() / ov1.sum().clamp_min(1)
    l2 = ((c2[0] - apply(Ti, x2[0])).abs().sum(-1) * ov2).sum() / ov2.sum().clamp_min(1)
    return bce + l1 + l2


def farthest_point_sample(xyz: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of `n` farthest points (all when there are fewer), first point drawn by `seed`."""
    N = len(xyz)
    if N <= n:
        return torch.arange(N)
    idx = torch.empty(n, dtype=torch.long)
    idx[0] = int(torch.randint(N, (1,), generator=torch.Generator().manual_seed(seed)))
    dist = torch.full((N,), float("inf"))
    for i in range(1, n):
        dist = torch.minimum(dist, (xyz - xyz[idx[i - 1]]).pow(2).sum(-1))
        idx[i] = int(dist.argmax())
    return idx


__all__ = ["RegistrationHead", "SinePosEmbedding", "apply", "farthest_point_sample", "match_log_odds",
           "registration_loss", "rmse", "se3_compare", "weighted_kabsch"]
