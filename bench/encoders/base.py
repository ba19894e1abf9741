"""The one interface every encoder of the zoo presents to the rest of the benchmark.

Probes never see a backend (timm, open_clip, transformers): they get an `EncoderOutput` with the
CLS embedding, the patch-token grid (register tokens dropped) and the last k blocks, and the
`Preprocess` that says how images must be prepared for this encoder.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class Preprocess:
    resolution: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    patch_size: int
    interpolation: str = "bicubic"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class BlockOutput:
    cls: torch.Tensor  # (B, D), final norm applied
    patches: torch.Tensor  # (B, h, w, D), register tokens dropped, final norm applied


@dataclass
class EncoderOutput:
    cls: torch.Tensor  # (B, D): the last block's CLS (or the pooled embedding for CLS-free models)
    patches: torch.Tensor  # (B, h, w, D): the last block's patch grid
    blocks: list[BlockOutput] = field(default_factory=list)  # last k blocks, oldest first


class Encoder(nn.Module):
    """Base class: subclasses implement `_forward(images, n_last_blocks)`.

    `images` are already resized and normalised with `self.preprocess` (B, 3, H, W).
    """

    name: str = "encoder"
    backend: str = "?"
    preprocess: Preprocess
    embed_dim: int
    num_blocks: int
    weights_id: str = "unknown"  # sha256 prefix of the weights, or "random-init(seed=N)"
    random_init: bool = False

    def forward(self, images: torch.Tensor, n_last_blocks: int = 1) -> EncoderOutput:
        if not 1 <= n_last_blocks <= self.num_blocks:
            raise ValueError(f"n_last_blocks must be in 1..{self.num_blocks}, got {n_last_blocks}")
        return self._forward(images, n_last_blocks)

    def _forward(self, images: torch.Tensor, n_last_blocks: int) -> EncoderOutput:  # pragma: no cover
        raise NotImplementedError

    @property
    def label(self) -> str:
        """Human-facing name; random-init weights are always said out loud."""
        return f"{self.name} [random-init]" if self.random_init else self.name

    def identity(self) -> dict:
        """What makes features from this encoder distinct (used by the cache and the tracker)."""
        return {
            "encoder": self.name,
            "backend": self.backend,
            "weights_id": self.weights_id,
            "random_init": self.random_init,
            "preprocess": self.preprocess.as_dict(),
        }
