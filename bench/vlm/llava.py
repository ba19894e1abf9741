"""LLaVA-format conversation data: validation, writing, and the torch ``Dataset``.

Format (users can bring their own): a JSON list of

    {"id": str, "image": "rel/path.jpg" | ["rel/a.jpg", "rel/b.jpg", ...] (optional),
     "conversations": [{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", "value": "..."}, ...]}

with image paths relative to an image root and one ``<image>`` placeholder per image, in order.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bench.io import atomic_path
from bench.vlm.tokenizer import IMAGE_TOKEN

SPEAKERS = ("human", "gpt", "system")


class LlavaFormatError(ValueError):
    pass


def sample_images(sample: dict) -> list[str]:
    img = sample.get("image")
    if img is None:
        return []
    return [img] if isinstance(img, str) else list(img)


def validate_sample(sample: dict, image_root: Path | None = None) -> None:
    """Raise :class:`LlavaFormatError` unless ``sample`` is well-formed LLaVA data."""
    sid = sample.get("id", "?")
    if not isinstance(sample.get("id"), str):
        raise LlavaFormatError(f"sample {sid}: 'id' must be a string")
    img = sample.get("image")
    if img is not None and not (isinstance(img, str) or (isinstance(img, list) and all(isinstance(i, str) for i in img))):
        raise LlavaFormatError(f"sample {sid}: 'image' must be a string or a list of strings")
    conv = sample.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise LlavaFormatError(f"sample {sid}: 'conversations' must be a non-empty list")
    if not any(t.get("from") == "gpt" for t in conv):
        raise LlavaFormatError(f"sample {sid}: no 'gpt' turn to supervise")
    for t in conv:
        if t.get("from") not in SPEAKERS or not isinstance(t.get("value"), str):
            raise LlavaFormatError(f"sample {sid}: turns need 'from' in {SPEAKERS} and a string 'value'")
    n_tok = sum(t["value"].count(IMAGE_TOKEN) for t in conv)
    n_img = len(sample_images(sample))
    if n_tok != n_img:
        raise LlavaFormatError(f"sample {sid}: {n_tok} {IMAGE_TOKEN} placeholders for {n_img} images")
    if image_root is not None:
        for rel in sample_images(sample):
            if not (Path(image_root) / rel).is_file():
                raise LlavaFormatError(f"sample {sid}: image {rel} not found under {image_root}")


def write_llava(path: Path, samples: list[dict], image_root: Path | None = None) -> None:
    for s in samples:
        validate_sample(s, image_root)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(samples, indent=1, ensure_ascii=False))


def read_llava(path: Path) -> list[dict]:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, list):
        raise LlavaFormatError(f"{path}: expected a JSON list of samples")
    return data


def pil_to_tensor(im) -> torch.Tensor:
    """Default image transform: RGB uint8 -> float (3, H, W) in [0, 1]."""
    arr = np.asarray(im.convert("RGB"), np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


class LlavaDataset(torch.utils.data.Dataset):
    """``item -> {"id", "images": [Tensor(3, H, W)], "conversations": [{"from", "value"}]}``.

    ``image_transform`` maps a PIL image to a tensor (e.g. the encoder's eval transform); the default
    gives [0, 1] floats at the stored size.
    """

    def __init__(self, json_path: str | Path, image_root: str | Path, image_transform: Callable | None = None,
                 validate: bool = True):
        self.json_path, self.image_root = Path(json_path), Path(image_root)
        self.samples = read_llava(self.json_path)
        self.transform = image_transform or pil_to_tensor
        if validate:
            for s in self.samples:
                validate_sample(s)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        from PIL import Image

        s = self.samples[i]
        images = []
        for rel in sample_images(s):
            with Image.open(self.image_root / rel) as im:
                images.append(self.transform(im.convert("RGB")))
        return {"id": s["id"], "images": images, "conversations": s["conversations"]}
