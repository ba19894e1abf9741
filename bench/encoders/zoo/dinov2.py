"""DINOv2 (Meta, LVD-142M), timm VisionTransformer, patch 14; `-reg4` = with 4 register tokens.

Weights: `timm/<arch>.lvd142m`. The checkpoints' position table is 37x37 (518 px); we evaluate at
224 px (16x16 patches, position embeddings interpolated), the resolution of DINOv2's own linear /
kNN evaluations. `dinov2` is the paper's baseline, ViT-g/14.
"""
from __future__ import annotations

from bench.encoders import register_encoder
from bench.encoders.zoo._common import TIMM_FILES, timm_encoder

RES = 224


@register_encoder("dinov2-vits14", backend="timm", family="dinov2", hf_repo="timm/vit_small_patch14_dinov2.lvd142m",
                  weight_files=TIMM_FILES, description="DINOv2 ViT-S/14 (21M, 384-d, 12 blocks), 224 px.")
def dinov2_vits14(weights, seed):
    return timm_encoder("vit_small_patch14_dinov2.lvd142m", "dinov2-vits14", weights, seed, resolution=RES)


@register_encoder("dinov2-vitb14", backend="timm", family="dinov2", hf_repo="timm/vit_base_patch14_dinov2.lvd142m",
                  weight_files=TIMM_FILES, description="DINOv2 ViT-B/14 (86M, 768-d, 12 blocks), 224 px.")
def dinov2_vitb14(weights, seed):
    return timm_encoder("vit_base_patch14_dinov2.lvd142m", "dinov2-vitb14", weights, seed, resolution=RES)


@register_encoder("dinov2-vitl14", backend="timm", family="dinov2", hf_repo="timm/vit_large_patch14_dinov2.lvd142m",
                  weight_files=TIMM_FILES, description="DINOv2 ViT-L/14 (300M, 1024-d, 24 blocks), 224 px.")
def dinov2_vitl14(weights, seed):
    return timm_encoder("vit_large_patch14_dinov2.lvd142m", "dinov2-vitl14", weights, seed, resolution=RES)


@register_encoder("dinov2-vitg14", backend="timm", family="dinov2", hf_repo="timm/vit_giant_patch14_dinov2.lvd142m",
                  weight_files=TIMM_FILES, description="DINOv2 ViT-g/14 (1.1B, 1536-d, 40 blocks, SwiGLU), 224 px.",
                  aliases={"dinov2": "the paper's DINOv2 baseline, ViT-g/14"})
def dinov2_vitg14(weights, seed):
    return timm_encoder("vit_giant_patch14_dinov2.lvd142m", "dinov2-vitg14", weights, seed, resolution=RES)


@register_encoder("dinov2-vits14-reg4", backend="timm", family="dinov2",
                  hf_repo="timm/vit_small_patch14_reg4_dinov2.lvd142m", weight_files=TIMM_FILES,
                  description="DINOv2 ViT-S/14 with 4 registers (dropped from the patch grid), 224 px.")
def dinov2_vits14_reg4(weights, seed):
    return timm_encoder("vit_small_patch14_reg4_dinov2.lvd142m", "dinov2-vits14-reg4", weights, seed, resolution=RES)


@register_encoder("dinov2-vitb14-reg4", backend="timm", family="dinov2",
                  hf_repo="timm/vit_base_patch14_reg4_dinov2.lvd142m", weight_files=TIMM_FILES,
                  description="DINOv2 ViT-B/14 with 4 registers (dropped from the patch grid), 224 px.")
def dinov2_vitb14_reg4(weights, seed):
    return timm_encoder("vit_base_patch14_reg4_dinov2.lvd142m", "dinov2-vitb14-reg4", weights, seed, resolution=RES)


@register_encoder("dinov2-vitl14-reg4", backend="timm", family="dinov2",
                  hf_repo="timm/vit_large_patch14_reg4_dinov2.lvd142m", weight_files=TIMM_FILES,
                  description="DINOv2 ViT-L/14 with 4 registers (dropped from the patch grid), 224 px.")
def dinov2_vitl14_reg4(weights, seed):
    return timm_encoder("vit_large_patch14_reg4_dinov2.lvd142m", "dinov2-vitl14-reg4", weights, seed, resolution=RES)


@register_encoder("dinov2-vitg14-reg4", backend="timm", family="dinov2",
                  hf_repo="timm/vit_giant_patch14_reg4_dinov2.lvd142m", weight_files=TIMM_FILES,
                  description="DINOv2 ViT-g/14 with 4 registers (dropped from the patch grid), 224 px.")
def dinov2_vitg14_reg4(weights, seed):
    return timm_encoder("vit_giant_patch14_reg4_dinov2.lvd142m", "dinov2-vitg14-reg4", weights, seed, resolution=RES)
