"""Helpers shared by the zoo modules (not a zoo module itself: `_`-prefixed modules are skipped).

Zoo modules must stay import-light (no timm / transformers / open_clip at import time) so that
listing the zoo is fast; backends are imported inside the factories.
"""
from __future__ import annotations

from typing import Any

TIMM_FILES = ("model.safetensors", "pytorch_model.bin")
HF_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
OPENCLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                  "open_clip_pytorch_model.bin")


def timm_encoder(model_name: str, name: str, weights, seed: int, **kw: Any):
    """`model_name` is timm's "arch.tag": the tag selects the pretrained cfg (mean/std/size)."""
    from bench.encoders.backends.timm_backend import TimmEncoder

    return TimmEncoder.create(model_name, name=name, weights=weights, seed=seed, **kw)


def hf_encoder(name: str, weights, seed: int, **kw: Any):
    from bench.encoders.backends.hf_backend import HFEncoder

    return HFEncoder.create(name=name, weights=weights, seed=seed, **kw)


def openclip_encoder(arch: str, tag: str, name: str, weights, seed: int, **kw: Any):
    from bench.encoders.backends.openclip_backend import OpenCLIPEncoder

    return OpenCLIPEncoder.create(arch, name=name, weights=weights, seed=seed, pretrained_tag=tag, **kw)
