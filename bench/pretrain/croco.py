"""CroCo (Weinzaepfel et al., NeurIPS 2022): cross-view completion, MAE with a second view of the scene.

View A is masked (CroCo: 90%), view B (another camera of the same scene, frustum overlapping) is seen
whole; both go through the same encoder; a light decoder fills A's mask tokens with self-attention
over A and cross-attention to B's tokens, and regresses A's masked patches (MAE's normalised pixels).
Where A's content is hidden but visible in B, the patch tokens must carry what lets the decoder find
and warp it: relative geometry, which is why CroCo pretraining helps depth and stereo.
"""
from __future__ import annotations

import torch
from torch import nn

from bench.posenc import sincos_2d


class CrossBlock(nn.Module):
    """CroCo's decoder block: self-attention, cross-attention to the reference view, MLP (pre-norm)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1, self.norm2, self.norm_ref, self.norm3 = (nn.LayerNorm(dim) for _ in range(4))
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h, need_weights=False)[0]
        r = self.norm_ref(ref)
        x = x + self.cross_attn(self.norm2(x), r, r, need_weights=False)[0]
        return x + self.mlp(self.norm3(x))


class CrossViewDecoder(nn.Module):
    def __init__(self, embed_dim: int, dec_dim: int, dec_depth: int, patch: int, heads: int = 4):
        super().__init__()
        self.embed = nn.Linear(embed_dim, dec_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec_dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.blocks = nn.ModuleList([CrossBlock(dec_dim, heads) for _ in range(dec_depth)])
        self.norm = nn.LayerNorm(dec_dim)
        self.pred = nn.Linear(dec_dim, patch * patch * 3)

    def forward(self, visible: torch.Tensor, keep: torch.Tensor, n: int, grid: tuple[int, int],
                reference: torch.Tensor, ref_grid: tuple[int, int]) -> torch.Tensor:
        """`visible` (B, 1 + k, D) A's encoder output (CLS first) with kept indices `keep` (B, k);
        `reference` (B, 1 + m, D) B's whole encoder output -> A's patch predictions (B, n, p*p*3)."""
        b = visible.shape[0]
        x = self.embed(visible)
        full = self.mask_token.expand(b, n, -1).clone()
        full.scatter_(1, keep[..., None].expand(-1, -1, x.shape[-1]), x[:, 1:])
        x = torch.cat([x[:, :1], full + sincos_2d(x.shape[-1], *grid).to(x)[None]], dim=1)
        ref = self.embed(reference)
        ref = torch.cat([ref[:, :1], ref[:, 1:] + sincos_2d(ref.shape[-1], *ref_grid).to(ref)[None]], dim=1)
        for blk in self.blocks:
            x = blk(x, ref)
        return self.pred(self.norm(x)[:, 1:])


def encode_all(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Every token of a timm ViT (B, 1 + N, D), normalised: the reference view's side of the pair."""
    return model.forward_features(images)


__all__ = ["CrossBlock", "CrossViewDecoder", "encode_all"]
