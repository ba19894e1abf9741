"""Evaluation-time preprocessing built from an encoder's `Preprocess` (no augmentation)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import v2 as T

from bench.encoders.base import Preprocess

_INTERP = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR}


def interpolation_mode(name: str) -> T.InterpolationMode:
    """An encoder's interpolation name -> torchvision's mode (bicubic unless it says otherwise)."""
    return _INTERP.get(name, T.InterpolationMode.BICUBIC)


@dataclass(frozen=True)
class EvalTransform:
    """Resize the shorter side to resolution/crop_ratio, centre-crop, normalise (DINO kNN/linear eval)."""

    preprocess: Preprocess
    crop_ratio: float = 224 / 256

    @property
    def resize(self) -> int:
        return int(round(self.preprocess.resolution / self.crop_ratio))

    def describe(self) -> str:
        p = self.preprocess
        return (f"resize_shorter={self.resize},center_crop={p.resolution},interp={p.interpolation},"
                f"mean={list(p.mean)},std={list(p.std)}")

    def __post_init__(self) -> None:
        p = self.preprocess
        object.__setattr__(self, "_fn", T.Compose([
            T.PILToTensor(),
            T.Resize(self.resize, interpolation=_INTERP.get(p.interpolation, T.InterpolationMode.BICUBIC),
                     antialias=True),
            T.CenterCrop(p.resolution),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(p.mean, p.std),
        ]))

    def __call__(self, image):
        return self._fn(image)
