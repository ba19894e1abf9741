"""AIMv2 (Apple), timm VisionTransformer, patch 14, 224 px, no CLS token (average pool).

`cls` = the average-pooled pre-logits embedding for the last block, patch mean for earlier blocks.
The paper does not say which AIMv2 size it used; the alias `aimv2` assumes the largest (3B, 224 px).
"""
from __future__ import annotations

from bench.encoders import register_encoder
from bench.encoders.zoo._common import TIMM_FILES, timm_encoder

_NOTE = " No CLS token: cls = average-pooled embedding (last block) / patch mean (earlier blocks)."


@register_encoder("aimv2-vitl14", backend="timm", family="aimv2", hf_repo="timm/aimv2_large_patch14_224.apple_pt",
                  weight_files=TIMM_FILES, description="AIMv2 ViT-L/14 (300M, 1024-d, 24 blocks), 224 px." + _NOTE)
def aimv2_vitl14(weights, seed):
    return timm_encoder("aimv2_large_patch14_224.apple_pt", "aimv2-vitl14", weights, seed)


@register_encoder("aimv2-vith14", backend="timm", family="aimv2", hf_repo="timm/aimv2_huge_patch14_224.apple_pt",
                  weight_files=TIMM_FILES, description="AIMv2 ViT-H/14 (680M, 1536-d, 24 blocks), 224 px." + _NOTE)
def aimv2_vith14(weights, seed):
    return timm_encoder("aimv2_huge_patch14_224.apple_pt", "aimv2-vith14", weights, seed)


@register_encoder("aimv2-1b14", backend="timm", family="aimv2", hf_repo="timm/aimv2_1b_patch14_224.apple_pt",
                  weight_files=TIMM_FILES, description="AIMv2 1B/14 (1.2B, 2048-d, 24 blocks), 224 px." + _NOTE)
def aimv2_1b14(weights, seed):
    return timm_encoder("aimv2_1b_patch14_224.apple_pt", "aimv2-1b14", weights, seed)


@register_encoder("aimv2-3b14", backend="timm", family="aimv2", hf_repo="timm/aimv2_3b_patch14_224.apple_pt",
                  weight_files=TIMM_FILES, description="AIMv2 3B/14 (2.7B, 3072-d, 24 blocks), 224 px." + _NOTE,
                  aliases={"aimv2": "size assumed: the paper does not state it"})
def aimv2_3b14(weights, seed):
    return timm_encoder("aimv2_3b_patch14_224.apple_pt", "aimv2-3b14", weights, seed)
