"""`vit-tiny`: a randomly initialised ViT-Ti/16 — the offline default (no weights needed)."""
from __future__ import annotations

from bench.encoders import register_encoder
from bench.encoders.zoo._common import timm_encoder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@register_encoder("vit-tiny", backend="timm", family="vit", hf_repo=None, random_init=True,
                  description="RANDOM-INIT (seeded, no pretrained weights) ViT-Ti/16, timm vit_tiny_patch16_224: "
                              "192-d, 12 blocks, 224 px, ImageNet mean/std. Offline smoke-test / demo encoder; "
                              "its numbers say nothing about pretrained encoders.")
def vit_tiny(weights, seed):
    return timm_encoder("vit_tiny_patch16_224", "vit-tiny", weights, seed, resolution=224,
                        mean=IMAGENET_MEAN, std=IMAGENET_STD)
