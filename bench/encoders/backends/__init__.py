"""Backends that wrap a model library behind the uniform `Encoder` interface.

* `TimmEncoder` (timm VisionTransformer / Eva: DINOv2, DINOv3, SigLIP2, AIMv2, PE-Core, ...)
* `HFEncoder` (transformers: DINOv3ViTModel, Dinov2Model, Dinov2WithRegistersModel,
  Siglip2VisionModel, SiglipVisionModel)
* `OpenCLIPEncoder` (open_clip ViTs)

Conventions shared by all backends (see each class for the details):

* every block's tokens get the model's final norm (as DINOv2's `get_intermediate_layers(norm=True)`);
* `patches` is the (B, h, w, D) grid of patch tokens, CLS and register tokens dropped;
* `cls` is the CLS token. Models *without* a CLS token (SigLIP/SigLIP2 MAP head, AIMv2 and some
  PE-Core sizes) get the model's own pooled embedding (pre-logits: MAP attention pool or average
  pool, *before* any contrastive projection) for the last block, and the mean of the normed patch
  tokens for earlier blocks (a pooled embedding only exists after the last block);
* random init is seeded inside `torch.random.fork_rng()`, so it is deterministic and leaves the
  global RNG untouched.

The backend modules import their model library lazily (only when an encoder is built), so listing
the zoo stays fast and a missing optional library only affects the encoders that need it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from bench.encoders.base import BlockOutput, EncoderOutput

if TYPE_CHECKING:  # pragma: no cover
    from bench.encoders.weights import ResolvedWeights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)

_LAZY = {
    "TimmEncoder": "bench.encoders.backends.timm_backend",
    "HFEncoder": "bench.encoders.backends.hf_backend",
    "OpenCLIPEncoder": "bench.encoders.backends.openclip_backend",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def weights_id_for(weights: "ResolvedWeights | None", seed: int) -> str:
    return weights.sha256[:16] if weights is not None else f"random-init(seed={seed})"


def assemble(block_tokens: list[torch.Tensor], block_cls: list[torch.Tensor | None], grid: tuple[int, int],
             pooled: torch.Tensor | None = None) -> EncoderOutput:
    """Build an `EncoderOutput` from per-block patch tokens (B, h*w, D), oldest block first.

    `block_cls[i]` is that block's CLS token, or None for CLS-free models: then the last block
    takes `pooled` (the model's pooled embedding) and earlier blocks the mean of their patches.
    """
    h, w = grid
    blocks = []
    last = len(block_tokens) - 1
    for i, (tokens, cls) in enumerate(zip(block_tokens, block_cls)):
        b, n, d = tokens.shape
        if n != h * w:
            raise RuntimeError(f"expected {h}x{w}={h * w} patch tokens, got {n}")
        if cls is None:
            cls = pooled if (i == last and pooled is not None) else tokens.mean(dim=1)
        blocks.append(BlockOutput(cls=cls, patches=tokens.reshape(b, h, w, d)))
    return EncoderOutput(cls=blocks[-1].cls, patches=blocks[-1].patches, blocks=blocks)


def check_grid(images: torch.Tensor, patch_size: int) -> tuple[int, int]:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    H, W = images.shape[-2:]
    if H % patch_size or W % patch_size:
        raise ValueError(f"image size {H}x{W} is not a multiple of the patch size {patch_size}")
    return H // patch_size, W // patch_size


__all__ = ["CLIP_MEAN", "CLIP_STD", "HALF", "HFEncoder", "IMAGENET_MEAN", "IMAGENET_STD", "OpenCLIPEncoder",
           "TimmEncoder", "assemble", "check_grid", "weights_id_for"]
