"""`EncoderCard`: what `bench list encoders` shows about a zoo entry, known without building it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncoderCard:
    """What `bench list encoders` shows, known without building the model."""

    name: str
    backend: str  # timm | transformers | open_clip
    family: str
    hf_repo: str | None  # where pretrained weights come from; None = random init only
    random_init: bool = False
    description: str = ""
    weight_files: tuple[str, ...] = ("model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin")


__all__ = ["EncoderCard"]
