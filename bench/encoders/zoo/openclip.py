"""OpenCLIP ViTs trained on LAION-2B (open_clip backend; only the image tower is kept).

`openclip` is the paper's baseline "OpenCLIP ViT-G/14", i.e. LAION's ViT-bigG-14 (capital G;
ViT-g-14 is the smaller lowercase-g model, also listed). `cls` is the `ln_post`-normed CLS token
(width-dim, = `encode_image` before the final projection); see the backend for "projected".
Inputs must be at the native 224 px (open_clip does not interpolate position embeddings).
"""
from __future__ import annotations

from bench.encoders import register_encoder
from bench.encoders.zoo._common import OPENCLIP_FILES, openclip_encoder


@register_encoder("openclip-vitb16", backend="open_clip", family="openclip",
                  hf_repo="laion/CLIP-ViT-B-16-laion2B-s34B-b88K", weight_files=OPENCLIP_FILES,
                  description="OpenCLIP ViT-B-16 laion2b_s34b_b88k (768-d, 12 blocks), 224 px.")
def openclip_vitb16(weights, seed):
    return openclip_encoder("ViT-B-16", "laion2b_s34b_b88k", "openclip-vitb16", weights, seed)


@register_encoder("openclip-vitl14", backend="open_clip", family="openclip",
                  hf_repo="laion/CLIP-ViT-L-14-laion2B-s32B-b82K", weight_files=OPENCLIP_FILES,
                  description="OpenCLIP ViT-L-14 laion2b_s32b_b82k (1024-d, 24 blocks), 224 px, mean/std 0.5.")
def openclip_vitl14(weights, seed):
    return openclip_encoder("ViT-L-14", "laion2b_s32b_b82k", "openclip-vitl14", weights, seed)


@register_encoder("openclip-vitg14", backend="open_clip", family="openclip",
                  hf_repo="laion/CLIP-ViT-g-14-laion2B-s34B-b88K", weight_files=OPENCLIP_FILES,
                  description="OpenCLIP ViT-g-14 laion2b_s34b_b88k (lowercase g: 1408-d, 40 blocks), 224 px.")
def openclip_vitg14(weights, seed):
    return openclip_encoder("ViT-g-14", "laion2b_s34b_b88k", "openclip-vitg14", weights, seed)


@register_encoder("openclip-vitbigg14", backend="open_clip", family="openclip",
                  hf_repo="laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", weight_files=OPENCLIP_FILES,
                  description="OpenCLIP ViT-bigG-14 ('ViT-G/14') laion2b_s39b_b160k (1664-d, 48 blocks), 224 px.",
                  aliases={"openclip": "the paper's OpenCLIP ViT-G/14 (= ViT-bigG-14)"})
def openclip_vitbigg14(weights, seed):
    return openclip_encoder("ViT-bigG-14", "laion2b_s39b_b160k", "openclip-vitbigg14", weights, seed)
