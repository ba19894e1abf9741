"""DINOv3 (Meta, LVD-1689M), timm eva.py family: 1 CLS + 4 register tokens, RoPE, patch 16.

Weights: `timm/<arch>.lvd1689m` on the Hugging Face hub (gated: accept the DINOv3 licence first).
Preprocessing follows timm's pretrained cfg (256 px, ImageNet mean/std). `dinov3` is the paper's
baseline, ViT-7B/16. `dinov3-vitb16-hf` is the same ViT-B/16 through transformers' DINOv3ViTModel.
"""
from __future__ import annotations

from bench.encoders import register_encoder
from bench.encoders.zoo._common import HF_FILES, TIMM_FILES, hf_encoder, timm_encoder

_GATED = " Gated repo: accept the DINOv3 licence on the hub before downloading."


@register_encoder("dinov3-vits16", backend="timm", family="dinov3", hf_repo="timm/vit_small_patch16_dinov3.lvd1689m",
                  weight_files=TIMM_FILES, description="DINOv3 ViT-S/16 (21M, 384-d, 12 blocks), LVD-1689M." + _GATED)
def dinov3_vits16(weights, seed):
    return timm_encoder("vit_small_patch16_dinov3.lvd1689m", "dinov3-vits16", weights, seed)


@register_encoder("dinov3-vits16plus", backend="timm", family="dinov3",
                  hf_repo="timm/vit_small_plus_patch16_dinov3.lvd1689m", weight_files=TIMM_FILES,
                  description="DINOv3 ViT-S+/16 (29M, 384-d, 12 blocks, SwiGLU), LVD-1689M." + _GATED)
def dinov3_vits16plus(weights, seed):
    return timm_encoder("vit_small_plus_patch16_dinov3.lvd1689m", "dinov3-vits16plus", weights, seed)


@register_encoder("dinov3-vitb16", backend="timm", family="dinov3", hf_repo="timm/vit_base_patch16_dinov3.lvd1689m",
                  weight_files=TIMM_FILES, description="DINOv3 ViT-B/16 (86M, 768-d, 12 blocks), LVD-1689M." + _GATED)
def dinov3_vitb16(weights, seed):
    return timm_encoder("vit_base_patch16_dinov3.lvd1689m", "dinov3-vitb16", weights, seed)


@register_encoder("dinov3-vitl16", backend="timm", family="dinov3", hf_repo="timm/vit_large_patch16_dinov3.lvd1689m",
                  weight_files=TIMM_FILES, description="DINOv3 ViT-L/16 (300M, 1024-d, 24 blocks), LVD-1689M." + _GATED)
def dinov3_vitl16(weights, seed):
    return timm_encoder("vit_large_patch16_dinov3.lvd1689m", "dinov3-vitl16", weights, seed)


@register_encoder("dinov3-vith16plus", backend="timm", family="dinov3",
                  hf_repo="timm/vit_huge_plus_patch16_dinov3.lvd1689m", weight_files=TIMM_FILES,
                  description="DINOv3 ViT-H+/16 (840M, 1280-d, 32 blocks, SwiGLU), LVD-1689M." + _GATED)
def dinov3_vith16plus(weights, seed):
    return timm_encoder("vit_huge_plus_patch16_dinov3.lvd1689m", "dinov3-vith16plus", weights, seed)


@register_encoder("dinov3-vit7b16", backend="timm", family="dinov3", hf_repo="timm/vit_7b_patch16_dinov3.lvd1689m",
                  weight_files=TIMM_FILES,
                  description="DINOv3 ViT-7B/16 (6.7B, 4096-d, 40 blocks, SwiGLU), LVD-1689M; ~27 GB fp32 "
                              "(cast to bf16 for inference)." + _GATED,
                  aliases={"dinov3": "the paper's DINOv3 baseline, ViT-7B/16"})
def dinov3_vit7b16(weights, seed):
    return timm_encoder("vit_7b_patch16_dinov3.lvd1689m", "dinov3-vit7b16", weights, seed)


@register_encoder("dinov3-vitb16-hf", backend="transformers", family="dinov3",
                  hf_repo="facebook/dinov3-vitb16-pretrain-lvd1689m", weight_files=HF_FILES,
                  description="DINOv3 ViT-B/16 through transformers' DINOv3ViTModel (needs the repo's "
                              "config.json too), 224 px." + _GATED)
def dinov3_vitb16_hf(weights, seed):
    return hf_encoder("dinov3-vitb16-hf", weights, seed, config_class="DINOv3ViTConfig",
                      config_kwargs=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                         intermediate_size=3072, patch_size=16, num_register_tokens=4))
