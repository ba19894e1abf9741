"""The pretraining images (the synthetic scenes' training split only), their hash, and multi-crop.

Sources: ``scenes`` = every colour view of the training scenes (`scene.json["split"] == "train"`);
``cls`` = the object crops of ``cls/train`` (cut from those same training views; their folder names
are class labels, which self-supervision never reads). Validation/test scenes are never opened.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from PIL import Image

from bench.errors import DataError
from bench.pretrain.recipe import PretrainRecipe

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def training_files(root: Path, sources: tuple[str, ...]) -> list[Path]:
    """The training images of a synthetic root, in a fixed order."""
    files: list[Path] = []
    for source in sources:
        if source == "scenes":
            scenes = root / "scenes"
            if not scenes.is_dir():
                raise DataError(scenes, "no scenes/ folder (generate with `bench data synth --preset ...`)")
            for scene in sorted(p for p in scenes.iterdir() if p.is_dir()):
                meta = json.loads((scene / "scene.json").read_text())
                if meta.get("split") == "train":
                    files += sorted((scene / "color").glob("*.jpg"))
        elif source == "cls":
            folder = root / "cls" / "train"
            if not folder.is_dir():
                raise DataError(folder, "no cls/train folder (generate with `bench data synth --preset ...`)")
            files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            raise ValueError(f"unknown pretraining source {source!r} (scenes, cls)")
    if not files:
        raise DataError(root, "no training images found")
    return files


def data_hash(root: Path, files: list[Path]) -> str:
    """The generator's content hash + the list of files used: the same images give the same hash on
    a copied BENCH_HOME; another preset, seed, generator version or selection gives another."""
    manifest = json.loads((root / "manifest.json").read_text())
    h = hashlib.sha256(str(manifest.get("content_hash", manifest.get("version"))).encode())
    for f in files:
        h.update(f.relative_to(root).as_posix().encode() + b"\n")
    return h.hexdigest()[:16]


def load_images(files: list[Path], side: int, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode once, shorter side resized to `side` (longer side capped at 4/3 of it), on one zero-padded
    uint8 canvas (N, 3, S, S), S = ceil(4/3 side), with each image's valid (h, w): crops are then cut for a
    whole batch at once."""
    import numpy as np
    from tqdm import tqdm

    canvas_side = -(-side * 4 // 3)
    canvas = torch.zeros(len(files), 3, canvas_side, canvas_side, dtype=torch.uint8)
    sizes = torch.zeros(len(files), 2)
    for i, f in enumerate(tqdm(files, desc="[pretrain] loading images", disable=not progress, leave=False)):
        with Image.open(f) as im:
            im = im.convert("RGB")
            scale = min(side / min(im.size), canvas_side / max(im.size))
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BICUBIC)
            arr = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)
        canvas[i, :, :arr.shape[1], :arr.shape[2]] = arr
        sizes[i] = torch.tensor(arr.shape[1:], dtype=torch.float32)
    return canvas, sizes


def _boxes(sizes: torch.Tensor, scale: tuple[float, float], ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """RandomResizedCrop boxes (x1, y1, x2, y2) inside each image's valid region (one try, clamped)."""
    n = len(sizes)
    h, w = sizes[:, 0], sizes[:, 1]
    area = h * w * torch.empty(n).uniform_(*scale)
    log_r = torch.empty(n).uniform_(torch.log(torch.tensor(ratio[0])).item(), torch.log(torch.tensor(ratio[1])).item())
    r = torch.exp(log_r)
    cw = torch.sqrt(area * r).clamp(max=w).clamp(min=2)
    ch = torch.sqrt(area / r).clamp(max=h).clamp(min=2)
    x1 = torch.rand(n) * (w - cw)
    y1 = torch.rand(n) * (h - ch)
    return torch.stack([x1, y1, x1 + cw, y1 + ch], 1)


def _blur(x: torch.Tensor, apply: torch.Tensor, sigma_range=(0.1, 2.0), k: int = 5) -> torch.Tensor:
    """Gaussian blur (separable, per-sample sigma) of the samples where `apply`."""
    import torch.nn.functional as F

    if not apply.any():
        return x
    sub = x[apply]
    b, c, hh, ww = sub.shape
    sigma = torch.empty(b).uniform_(*sigma_range)
    t = torch.arange(k, dtype=torch.float32) - k // 2
    kern = torch.exp(-(t[None] ** 2) / (2 * sigma[:, None] ** 2))
    kern = (kern / kern.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (b*c, k)
    y = sub.reshape(1, b * c, hh, ww)
    y = F.conv2d(F.pad(y, (k // 2, k // 2, 0, 0), mode="reflect"), kern[:, None, None, :], groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, k // 2, k // 2), mode="reflect"), kern[:, None, :, None], groups=b * c)
    out = x.clone()
    out[apply] = y.reshape(b, c, hh, ww)
    return out


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


class MultiCrop:
    """DINO's augmentations, computed for a whole batch at once: 2 global + `n_local` local
    random-resized crops (bilinear, `roi_align`), horizontal flip, colour jitter (p 0.8: brightness 0.4,
    contrast 0.4, saturation 0.2; DINO's hue 0.1 is left out: a per-pixel HSV round trip costs more
    than the model on 2 cores), grayscale (p 0.2), Gaussian blur (global 1: always, global 2: 10%,
    locals: 50%), solarisation (global 2: 20%), then the encoder's mean/std normalisation."""

    def __init__(self, r: PretrainRecipe):
        self.r = r
        self.mean = torch.tensor(r.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(r.std).view(1, 3, 1, 1)

    def plain(self, canvas: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        """MAE's augmentation: random-resized crop (scale `mae_scale`) at `mae_size` + flip, normalised."""
        return self._view(canvas.float(), sizes, self.r.mae_size, self.r.mae_scale, 0.0, colour=False)

    def _view(self, canvas, sizes, size, scale, p_blur, p_solarize=0.0, colour=True) -> torch.Tensor:
        from torchvision.ops import roi_align

        n = len(canvas)
        boxes = torch.cat([torch.arange(n, dtype=torch.float32)[:, None], _boxes(sizes, scale)], 1)
        x = roi_align(canvas, boxes, (size, size), spatial_scale=1.0, sampling_ratio=2, aligned=True) / 255.0
        flip = torch.rand(n) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if not colour:
            return (x - self.mean) / self.std
        jit = (torch.rand(n) < self.r.jitter_p)[:, None, None, None]
        bright = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4)
        contrast = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4)
        sat = torch.empty(n, 1, 1, 1).uniform_(0.8, 1.2)
        y = (x * bright).clamp(0, 1)
        y = ((y - _gray(y).mean((2, 3), keepdim=True)) * contrast + _gray(y).mean((2, 3), keepdim=True)).clamp(0, 1)
        y = ((y - _gray(y)) * sat + _gray(y)).clamp(0, 1)
        x = torch.where(jit, y, x)
        gray = (torch.rand(n) < self.r.gray_p)[:, None, None, None]
        x = torch.where(gray, _gray(x).expand_as(x), x)
        x = _blur(x, torch.rand(n) < p_blur)
        if p_solarize:
            sol = (torch.rand(n) < p_solarize)[:, None, None, None]
            x = torch.where(sol & (x >= 0.5), 1.0 - x, x)
        return (x - self.mean) / self.std

    def __call__(self, canvas: torch.Tensor, sizes: torch.Tensor) -> list[torch.Tensor]:
        """A batch (uint8 canvas, valid sizes) -> [global1 (B,3,g,g), global2, local_1 (B,3,l,l), ...]."""
        r, c = self.r, canvas.float()
        views = [self._view(c, sizes, r.global_size, r.global_scale, 1.0),
                 self._view(c, sizes, r.global_size, r.global_scale, 0.1, 0.2)]
        views += [self._view(c, sizes, r.local_size, r.local_scale, 0.5) for _ in range(r.n_local)]
        return views


__all__ = ["MultiCrop", "data_hash", "load_images", "training_files"]
