"""Perception Encoder Core (Meta), timm eva.py family with RoPE and an attention-pool head.

T/S/B/L have a CLS token (cls = CLS token); G/14 has none: cls = the attention-pooled pre-logits
embedding for the last block, patch mean for earlier blocks. The paper does not say which PE-Core
size it used; the alias `pe-core` assumes the largest (G/14, 448 px).
"""
from __future__ import annotations

from bench.encoders import register_encoder
from bench.encoders.zoo._common import TIMM_FILES, timm_encoder


@register_encoder("pe-core-vitt16", backend="timm", family="pe-core", hf_repo="timm/vit_pe_core_tiny_patch16_384.fb",
                  weight_files=TIMM_FILES, description="PE-Core T/16 (192-d, 12 blocks), 384 px.")
def pe_core_vitt16(weights, seed):
    return timm_encoder("vit_pe_core_tiny_patch16_384.fb", "pe-core-vitt16", weights, seed)


@register_encoder("pe-core-vits16", backend="timm", family="pe-core", hf_repo="timm/vit_pe_core_small_patch16_384.fb",
                  weight_files=TIMM_FILES, description="PE-Core S/16 (384-d, 12 blocks), 384 px.")
def pe_core_vits16(weights, seed):
    return timm_encoder("vit_pe_core_small_patch16_384.fb", "pe-core-vits16", weights, seed)


@register_encoder("pe-core-vitb16", backend="timm", family="pe-core", hf_repo="timm/vit_pe_core_base_patch16_224.fb",
                  weight_files=TIMM_FILES, description="PE-Core B/16 (93M, 768-d, 12 blocks), 224 px.")
def pe_core_vitb16(weights, seed):
    return timm_encoder("vit_pe_core_base_patch16_224.fb", "pe-core-vitb16", weights, seed)


@register_encoder("pe-core-vitl14", backend="timm", family="pe-core", hf_repo="timm/vit_pe_core_large_patch14_336.fb",
                  weight_files=TIMM_FILES, description="PE-Core L/14 (320M, 1024-d, 24 blocks), 336 px.")
def pe_core_vitl14(weights, seed):
    return timm_encoder("vit_pe_core_large_patch14_336.fb", "pe-core-vitl14", weights, seed)


@register_encoder("pe-core-vitg14", backend="timm", family="pe-core", hf_repo="timm/vit_pe_core_gigantic_patch14_448.fb",
                  weight_files=TIMM_FILES,
                  description="PE-Core G/14 (1.9B, 1536-d, 50 blocks), 448 px. No CLS token: cls = attention-pooled "
                              "embedding (last block) / patch mean (earlier blocks).",
                  aliases={"pe-core": "size assumed: the paper does not state it"})
def pe_core_vitg14(weights, seed):
    return timm_encoder("vit_pe_core_gigantic_patch14_448.fb", "pe-core-vitg14", weights, seed)
