"""NYU Depth v2 in the BTS layout (also read for the synthetic twin), plus what every depth loader shares.

Layout (BTS, https://github.com/cleinc/bts; DINOv2 / Binsformer use the same files)::

    root/
      nyu_train.txt                    "/scene/rgb_00000.jpg /scene/sync_depth_00000.png 518.8579"
      nyu_test.txt                     "scene/rgb_00000.jpg scene/sync_depth_00000.png 518.8579"
      sync/<scene>/rgb_XXXXX.jpg, sync_depth_XXXXX.png       (train, 16-bit PNG, millimetres)
      official_splits/test/<scene>/rgb_XXXXX.jpg, sync_depth_XXXXX.png

BTS's own split names (`nyudepthv2_{train,test}_files_with_gt.txt`, optionally under
`train_test_inputs/`) are found too, and so is the toolbox layout where the scene folders sit directly
in root. Depth = value / 1000 m, 0 = invalid, range 1e-3..10 m.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2 as T

from bench.data.fingerprint import files_identity
from bench.data.images import image_header_size, open_rgb, unreadable
from bench.encoders.base import Preprocess
from bench.errors import DataError

NYU_DEPTH_SCALE = 1000.0
NYU_MAX_DEPTH = 10.0
NYU_SPLIT_FILES = {
    "train": ("nyu_train.txt", "nyudepthv2_train_files_with_gt.txt",
              "train_test_inputs/nyudepthv2_train_files_with_gt.txt", "splits/nyu_train.txt"),
    "test": ("nyu_test.txt", "nyudepthv2_test_files_with_gt.txt",
             "train_test_inputs/nyudepthv2_test_files_with_gt.txt", "splits/nyu_test.txt"),
}
NYU_PREFIXES = {"train": ("sync", "", "train"), "test": ("official_splits/test", "", "test")}

_INTERP = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR}


# --- shared by the depth loaders ---------------------------------------------------------------------

def encoder_input_size(height: int, width: int, resolution: int, patch: int) -> tuple[int, int]:
    """Shorter side -> the encoder resolution, longer side scaled with it; both rounded to a multiple
    of the patch size (so the patch grid covers the whole image)."""
    short = max(patch, round(resolution / patch) * patch)
    if height <= width:
        return short, max(patch, round(width * short / height / patch) * patch)
    return max(patch, round(height * short / width / patch) * patch), short


@dataclass(frozen=True)
class DepthInputTransform:
    """Resize a (cropped) RGB frame to the encoder input size and normalise; optional horizontal flip
    (for flip test-time augmentation). No augmentation otherwise: the heads train on cached features."""

    preprocess: Preprocess
    size: tuple[int, int]  # (H, W) fed to the encoder
    flip: bool = False

    def describe(self) -> str:
        p = self.preprocess
        return (f"depth-input:resize={self.size[0]}x{self.size[1]}(shorter=res,longer~patch-multiple),"
                f"interp={p.interpolation},mean={list(p.mean)},std={list(p.std)},hflip={self.flip}")

    def __post_init__(self) -> None:
        p = self.preprocess
        ops = [T.PILToTensor(),
               T.Resize(list(self.size), interpolation=_INTERP.get(p.interpolation, T.InterpolationMode.BICUBIC),
                        antialias=True)]
        if self.flip:
            ops.append(T.RandomHorizontalFlip(p=1.0))
        ops += [T.ToDtype(torch.float32, scale=True), T.Normalize(p.mean, p.std)]
        object.__setattr__(self, "_fn", T.Compose(ops))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self._fn(image)


@dataclass(frozen=True)
class DepthSample:
    image: Path
    depth: Path
    focal: float
    group: str  # scene (NYU) or drive (KITTI): the unit a validation split is held out by


DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 16-bit grey PNGs as PIL opens them


def read_png16(path: Path) -> np.ndarray:
    """A 16-bit depth PNG as uint16 (PIL opens them as mode I;16 or I). Anything else is a
    `DataError` naming the file: an 8-bit PNG (its values are not millimetres / 256ths of a metre),
    a colour or palette PNG, a file that is truncated or not an image."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode not in DEPTH_MODES:
                bits = {"1": "1-bit", "L": "8-bit grey", "P": "8-bit palette", "LA": "8-bit grey+alpha",
                        "RGB": "8-bit RGB", "RGBA": "8-bit RGBA"}.get(mode, f"mode {mode}")
                raise DataError(path, f"{bits} image, but depth ground truth must be a single-channel 16-bit PNG "
                                      f"(NYU: millimetres, KITTI: metres x 256)")
            arr = np.asarray(im)
    except DataError:
        raise
    except Exception as exc:  # truncated / corrupt / not an image
        raise unreadable(path, exc) from None
    if arr.ndim != 2:
        raise DataError(path, f"depth map has shape {arr.shape}, expected a single channel (H, W)")
    if arr.dtype != np.uint16:
        if arr.dtype.kind not in "iu" or (arr.size and (arr.min() < 0 or arr.max() > 65535)):
            raise DataError(path, f"expected a 16-bit depth PNG, got values of {arr.dtype} outside 0..65535")
        arr = arr.astype(np.uint16)
    return arr


class DepthDataset:
    """Image + depth pairs. `__getitem__` -> (encoder input tensor, index) for the feature cache;
    `depth(i)` -> float32 metres (0 = invalid) at the ground-truth resolution."""

    name = "depth"
    depth_scale = 1.0
    max_depth = 10.0
    crop_name = "none"  # the fixed crop applied to image and depth before anything else

    def __init__(self, root: Path, split: str, samples: Sequence[DepthSample], transform: Callable | None = None):
        self.root, self.split, self.samples, self.transform = Path(root), split, list(samples), transform
        if not self.samples:
            raise FileNotFoundError(f"{self.name}: no {split} samples under {root}")

    def __len__(self) -> int:
        return len(self.samples)

    def crop_box(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        """(left, top, right, bottom) applied to image and depth alike; None = full frame."""
        return None

    def image(self, i: int) -> Image.Image:
        image = open_rgb(self.samples[i].image)
        box = self.crop_box(*image.size)
        return image.crop(box) if box else image

    def raw_depth(self, i: int) -> np.ndarray:
        """Ground truth in dataset units (uint16, 0 = invalid), cropped like the image. Refused with a
        `DataError` naming the file: not a 16-bit PNG, a size other than its image's, no valid pixel."""
        sample = self.samples[i]
        arr = read_png16(sample.depth)
        w, h = image_header_size(sample.image)
        if arr.shape != (h, w):
            raise DataError(sample.depth, f"depth map is {arr.shape[1]}x{arr.shape[0]} but its image "
                                          f"{sample.image.name} is {w}x{h}")
        box = self.crop_box(arr.shape[1], arr.shape[0])
        if box:
            l, t, r, b = box
            arr = arr[t:b, l:r]
        if not arr.any():
            where = f" inside the {self.crop_name} crop" if box else ""
            raise DataError(sample.depth, f"no valid depth pixel{where} (every value is 0 = invalid)")
        return arr

    def valid_fraction(self, i: int) -> float:
        """Fraction of valid (non-zero) ground-truth pixels of sample i, after the crop."""
        return float((self.raw_depth(i) > 0).mean())

    def depth(self, i: int) -> np.ndarray:
        return self.raw_depth(i).astype(np.float32) / self.depth_scale

    def image_size(self) -> tuple[int, int]:
        """(H, W) of the (cropped) frames, read from the first sample."""
        return self.image(0).size[::-1]

    def __getitem__(self, i: int):
        image = self.image(i)
        return (self.transform(image) if self.transform else image), i

    @property
    def groups(self) -> list[str]:
        return [s.group for s in self.samples]

    def identity(self) -> dict:
        """Feature-cache key: the images' relative paths, sizes and mtimes (`bench.data.fingerprint`;
        no absolute root) and the crop. Ground truth is not part of it: features come from images."""
        return {"kind": self.name, "split": self.split, "crop": self.crop_name,
                **files_identity([s.image for s in self.samples], self.root)}

    def with_transform(self, transform: Callable | None):
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.transform = transform
        return clone


def parse_split_file(path: Path) -> list[tuple[str, str, float]]:
    """Lines "image depth focal"; entries whose depth is "None" are skipped (no ground truth)."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise ValueError(f"{path}:{n}: expected 'image depth [focal]', got {line!r}")
        if parts[1] == "None":
            continue
        focal = float(parts[2]) if len(parts) > 2 else float("nan")
        out.append((parts[0].lstrip("/\\"), parts[1].lstrip("/\\"), focal))
    return out


def find_split_file(root: Path, candidates: Sequence[str]) -> Path:
    for c in candidates:
        if (root / c).is_file():
            return root / c
    raise FileNotFoundError(f"no split file under {root} (looked for {', '.join(candidates)})")


# --- NYU ---------------------------------------------------------------------------------------------

class NYUDepth(DepthDataset):
    name = "nyu-depth-v2"
    depth_scale = NYU_DEPTH_SCALE
    max_depth = NYU_MAX_DEPTH

    def __init__(self, root: str | Path, split: str = "train", transform: Callable | None = None,
                 split_file: str | Path | None = None):
        root = Path(root)
        if split not in NYU_SPLIT_FILES:
            raise ValueError(f"NYU split must be train or test, got {split!r}")
        split_path = Path(split_file) if split_file else find_split_file(root, NYU_SPLIT_FILES[split])
        entries = parse_split_file(split_path)
        prefix = self._find_prefix(root, split, entries)
        samples = [DepthSample(root / prefix / img, root / prefix / dep, focal, Path(img).parent.as_posix())
                   for img, dep, focal in entries]
        samples.sort(key=lambda s: str(s.image))  # the toolbox sorts by file name ("same order" fix)
        super().__init__(root, split, samples, transform)
        self.split_file = split_path

    @staticmethod
    def _find_prefix(root: Path, split: str, entries) -> str:
        if not entries:
            return ""
        for prefix in NYU_PREFIXES[split]:
            if (root / prefix / entries[0][0]).is_file():
                return prefix
        raise FileNotFoundError(f"NYU {split}: {entries[0][0]} not found under any of "
                                f"{[str(root / p) for p in NYU_PREFIXES[split]]}")


def held_out_split(groups: Sequence[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) indices: whole groups (scenes / drives) go to val so near-duplicate video frames
    never straddle the split; falls back to single frames when there is only one group."""
    uniq = sorted(set(groups))
    rng = np.random.default_rng(seed)
    if len(uniq) >= 2:
        n_val = min(len(uniq) - 1, max(1, math.ceil(fraction * len(uniq))))
        val_groups = set(rng.permutation(uniq)[:n_val].tolist())
        val = [i for i, g in enumerate(groups) if g in val_groups]
    else:
        n = len(groups)
        val = sorted(rng.permutation(n)[:min(n - 1, max(1, math.ceil(fraction * n)))].tolist())
    vs = set(val)
    return [i for i in range(len(groups)) if i not in vs], val


@dataclass
class IndexView:
    """A dataset restricted to some indices, with its own cache identity."""

    base: DepthDataset
    indices: list[int]
    tag: str
    transform: Callable | None = field(default=None)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        image = self.base.image(self.indices[i])
        t = self.transform or self.base.transform
        return (t(image) if t else image), i

    def depth(self, i: int) -> np.ndarray:
        return self.base.depth(self.indices[i])

    def raw_depth(self, i: int) -> np.ndarray:
        return self.base.raw_depth(self.indices[i])

    def image(self, i: int) -> Image.Image:
        return self.base.image(self.indices[i])

    def identity(self) -> dict:
        h = hashlib.sha256(",".join(map(str, self.indices)).encode()).hexdigest()[:16]
        return {**self.base.identity(), "view": self.tag, "indices_sha256": h, "n": len(self.indices)}


def strided_train_view(ds: DepthDataset, max_images: int, transform: Callable | None) -> tuple[IndexView, list[str]]:
    """The training frames the probe uses, and their groups: all of them (`max_images` 0 or >= the
    split), else an evenly strided subset of the (sorted) list (neighbouring video frames are near
    duplicates). The view's cache identity names the subset."""
    n = len(ds)
    if max_images and n > max_images:
        keep = np.linspace(0, n - 1, max_images).round().astype(int).tolist()
        return IndexView(ds, keep, f"strided-{max_images}", transform), [ds.groups[i] for i in keep]
    return IndexView(ds, list(range(n)), "all", transform), ds.groups


def resized_targets(view, size: tuple[int, int], progress: bool = False) -> torch.Tensor:
    """Ground truth resized (nearest) to `size` (H, W), kept in dataset units: (N, H, W) int32."""
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    out = torch.empty((len(view), *size), dtype=torch.int32)
    for i in tqdm(range(len(view)), desc="depth targets", unit="img", disable=not progress, leave=False):
        raw = torch.from_numpy(view.raw_depth(i).astype(np.int32))[None, None].float()
        out[i] = F.interpolate(raw, size=size, mode="nearest-exact")[0, 0].to(torch.int32)
    return out
