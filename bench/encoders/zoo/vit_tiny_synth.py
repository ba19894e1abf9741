"""`vit-tiny-synth`: vit-tiny's ViT-Ti/16, self-pretrained (DINO) on the synthetic scenes' training images.

Its weights are made here: `bench pretrain vit-tiny-synth` (or a `bench run` plan step) writes
``BENCH_HOME/checkpoints/vit-tiny-synth/encoder.safetensors`` (recipe: `bench.pretrain.recipe`).
"""
from __future__ import annotations

from bench.encoders import register_encoder
from bench.encoders.variants import SELF_PRETRAINED
from bench.encoders.zoo._common import timm_encoder
from bench.encoders.zoo.vit_tiny import IMAGENET_MEAN, IMAGENET_STD

SELF_PRETRAINED.register("vit-tiny-synth", "bench.pretrain.provider:PROVIDER")


@register_encoder("vit-tiny-synth", backend="timm", family="vit", hf_repo=None, weight_files=("encoder.safetensors",),
                  description="ViT-Ti/16 (timm vit_tiny_patch16_224, as vit-tiny) SELF-PRETRAINED ON SYNTHETIC "
                              "SCENES: DINO self-distillation on the synthetic 'small' preset's training images "
                              "only (`bench pretrain vit-tiny-synth`, a few minutes on 2 CPU cores). An offline "
                              "encoder worth boosting; not comparable to encoders pretrained on real images.")
def vit_tiny_synth(weights, seed):
    return timm_encoder("vit_tiny_patch16_224", "vit-tiny-synth", weights, seed, resolution=224,
                        mean=IMAGENET_MEAN, std=IMAGENET_STD)
