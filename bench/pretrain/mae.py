"""MAE (He et al., CVPR 2022): masked patch reconstruction, at the encoder's own resolution.

The encoder sees a random 25% of the patch tokens (+ CLS); a light decoder (`dec_depth` blocks of
width `dec_dim`) fills in mask tokens and regresses each masked patch's per-patch-normalised pixels
(MAE's norm_pix_loss). Cheap per image (the encoder runs on a quarter of the tokens), so it trains at
the resolution the benchmark evaluates at, and it trains every patch token: what dense probes read.
"""
from __future__ import annotations

import torch
from torch import nn

from bench.posenc import sincos_2d


class MAEDecoder(nn.Module):
    def __init__(self, embed_dim: int, dec_dim: int, dec_depth: int, patch: int, heads: int = 4):
        super().__init__()
        from timm.models.vision_transformer import Block

        self.embed = nn.Linear(embed_dim, dec_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec_dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.blocks = nn.ModuleList([Block(dec_dim, heads, mlp_ratio=4.0, qkv_bias=True) for _ in range(dec_depth)])
        self.norm = nn.LayerNorm(dec_dim)
        self.pred = nn.Linear(dec_dim, patch * patch * 3)

    def forward(self, visible: torch.Tensor, keep: torch.Tensor, n: int, grid: tuple[int, int]) -> torch.Tensor:
        """`visible` (B, 1 + k, D) encoder output (CLS first), `keep` (B, k) kept patch indices -> (B, n, p*p*3)."""
        b = visible.shape[0]
        x = self.embed(visible)
        full = self.mask_token.expand(b, n, -1).clone()
        full.scatter_(1, keep[..., None].expand(-1, -1, x.shape[-1]), x[:, 1:])
        full = full + sincos_2d(x.shape[-1], *grid).to(x)[None]
        x = torch.cat([x[:, :1], full], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.pred(self.norm(x)[:, 1:])


def patchify(images: torch.Tensor, p: int) -> torch.Tensor:
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def encode_visible(model: nn.Module, images: torch.Tensor, mask_ratio: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """timm ViT forward on a random subset of patches: (tokens (B, 1 + k, D), kept indices (B, k), n patches)."""
    x = model.patch_embed(images)  # (B, h, w, D) with dynamic_img_size
    x = model._pos_embed(x)  # CLS + position embeddings (interpolated for other sizes)
    cls, patches = x[:, :1], x[:, 1:]
    b, n, d = patches.shape
    k = max(1, int(round(n * (1 - mask_ratio))))
    keep = torch.rand(b, n, device=x.device).argsort(dim=1)[:, :k]
    x = torch.cat([cls, patches.gather(1, keep[..., None].expand(-1, -1, d))], dim=1)
    x = model.norm_pre(x)
    for blk in model.blocks:
        x = blk(x)
    return model.norm(x), keep, n


def mae_loss(pred: torch.Tensor, images: torch.Tensor, keep: torch.Tensor, p: int,
             norm_pix: bool = True) -> torch.Tensor:
    """Mean squared error on the masked patches: per-patch-normalised pixels (MAE's norm_pix_loss), or
    the (dataset-normalised) pixels themselves, whose brightness and colour the encoder must then keep."""
    target = patchify(images, p)
    if norm_pix:
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    masked = torch.ones(target.shape[:2], device=images.device)
    masked.scatter_(1, keep, 0.0)
    err = ((pred - target) ** 2).mean(-1)
    return (err * masked).sum() / masked.sum().clamp(min=1)


def grid_of(images: torch.Tensor, p: int) -> tuple[int, int]:
    return images.shape[-2] // p, images.shape[-1] // p


def reconstruction_loss(model: nn.Module, decoder: nn.Module, images: torch.Tensor, mask_ratio: float,
                        norm_pix: bool = True) -> torch.Tensor:
    """MAE's loss on `images`: encode a random `1 - mask_ratio` of the patches, decode, score the rest
    (the `mae` objective and the MAE half of `simclr+mae` / `mvsimclr+mae`)."""
    p = model.patch_embed.patch_size[0]
    tokens, keep, n = encode_visible(model, images, mask_ratio)
    return mae_loss(decoder(tokens, keep, n, grid_of(images, p)), images, keep, p, norm_pix)


__all__ = ["MAEDecoder", "encode_visible", "grid_of", "mae_loss", "patchify", "reconstruction_loss"]
