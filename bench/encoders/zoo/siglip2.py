"""SigLIP 2 (Google, WebLI) — fixed-resolution checkpoints through timm (`<arch>.v2_webli`).

SigLIP has no CLS token: `cls` is the MAP attention-pool embedding of the last block (pre-logits;
SigLIP's contrastive image embedding) and the mean of the normed patch tokens for earlier blocks.
`siglip2` is the paper's baseline ViT-g/16, taken as the giant-opt 384 px release
(`vit_giantopt_patch16_siglip_384.v2_webli` = google/siglip2-giant-opt-patch16-384).
`siglip2-vitb16-naflex-hf` exercises transformers' NaFlex `Siglip2VisionModel` (fed fixed square
inputs, see `bench.encoders.backends.hf_backend`).
"""
from __future__ import annotations

from bench.encoders import register_encoder
from bench.encoders.zoo._common import HF_FILES, TIMM_FILES, hf_encoder, timm_encoder

_NOTE = " No CLS token: cls = MAP-pooled embedding (last block) / patch mean (earlier blocks)."


@register_encoder("siglip2-vitb16", backend="timm", family="siglip2",
                  hf_repo="timm/vit_base_patch16_siglip_224.v2_webli", weight_files=TIMM_FILES,
                  description="SigLIP2 ViT-B/16 (86M, 768-d, 12 blocks), 224 px." + _NOTE)
def siglip2_vitb16(weights, seed):
    return timm_encoder("vit_base_patch16_siglip_224.v2_webli", "siglip2-vitb16", weights, seed)


@register_encoder("siglip2-vitl16", backend="timm", family="siglip2",
                  hf_repo="timm/vit_large_patch16_siglip_256.v2_webli", weight_files=TIMM_FILES,
                  description="SigLIP2 ViT-L/16 (300M, 1024-d, 24 blocks), 256 px." + _NOTE)
def siglip2_vitl16(weights, seed):
    return timm_encoder("vit_large_patch16_siglip_256.v2_webli", "siglip2-vitl16", weights, seed)


@register_encoder("siglip2-so400m14", backend="timm", family="siglip2",
                  hf_repo="timm/vit_so400m_patch14_siglip_224.v2_webli", weight_files=TIMM_FILES,
                  description="SigLIP2 So400m/14 (400M, 1152-d, 27 blocks), 224 px." + _NOTE)
def siglip2_so400m14(weights, seed):
    return timm_encoder("vit_so400m_patch14_siglip_224.v2_webli", "siglip2-so400m14", weights, seed)


@register_encoder("siglip2-so400m16", backend="timm", family="siglip2",
                  hf_repo="timm/vit_so400m_patch16_siglip_384.v2_webli", weight_files=TIMM_FILES,
                  description="SigLIP2 So400m/16 (400M, 1152-d, 27 blocks), 384 px." + _NOTE)
def siglip2_so400m16(weights, seed):
    return timm_encoder("vit_so400m_patch16_siglip_384.v2_webli", "siglip2-so400m16", weights, seed)


@register_encoder("siglip2-vitg16", backend="timm", family="siglip2",
                  hf_repo="timm/vit_giantopt_patch16_siglip_384.v2_webli", weight_files=TIMM_FILES,
                  description="SigLIP2 ViT-g/16 giant-opt (1.1B, 1536-d, 40 blocks), 384 px." + _NOTE,
                  aliases={"siglip2": "the paper's SigLIP2 baseline ViT-g/16 (giant-opt, 384 px)"})
def siglip2_vitg16(weights, seed):
    return timm_encoder("vit_giantopt_patch16_siglip_384.v2_webli", "siglip2-vitg16", weights, seed)


@register_encoder("siglip2-vitg16-256", backend="timm", family="siglip2",
                  hf_repo="timm/vit_giantopt_patch16_siglip_256.v2_webli", weight_files=TIMM_FILES,
                  description="SigLIP2 ViT-g/16 giant-opt (1.1B, 1536-d, 40 blocks), 256 px." + _NOTE)
def siglip2_vitg16_256(weights, seed):
    return timm_encoder("vit_giantopt_patch16_siglip_256.v2_webli", "siglip2-vitg16-256", weights, seed)


@register_encoder("siglip2-vitb16-naflex-hf", backend="transformers", family="siglip2",
                  hf_repo="google/siglip2-base-patch16-naflex", weight_files=HF_FILES,
                  description="SigLIP2 ViT-B/16 NaFlex through transformers' Siglip2VisionModel, fed 256 px "
                              "square images (16x16 patches; no aspect-preserving NaFlex resize)." + _NOTE)
def siglip2_vitb16_naflex_hf(weights, seed):
    return hf_encoder("siglip2-vitb16-naflex-hf", weights, seed, config_class="Siglip2VisionConfig",
                      config_kwargs=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                         intermediate_size=3072, patch_size=16, num_patches=256))
