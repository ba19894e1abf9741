"""Segmentation data through mmsegmentation's own datasets: ADE20K (`ADE20KDataset`, 150 classes,
reduce_zero_label), Pascal VOC 2012 (`PascalVOCDataset`, 21 classes, palette PNGs with 255 borders)
and the synthetic ADE20K twin (`SyntheticADE20KDataset`: ADE's loader with the K classes of
`ade/classes.json`), plus the fixed-size image view the feature cache needs (fast variant).

Roots (the folder the official archive extracts into, or its parent):
  ADE20K:  <root>/ADEChallengeData2016/{images,annotations}/{training,validation}/
  VOC2012: <root>/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation/{train,val}.txt}
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from bench.data.fingerprint import files_identity
from bench.data.images import check_jpeg_complete, unreadable
from bench.errors import DataError
from bench.mmseg_compat import import_mmseg, mmseg_scope

import_mmseg()

import mmcv  # noqa: E402
from mmseg.datasets import ADE20KDataset, PascalVOCDataset  # noqa: E402
from mmseg.registry import DATASETS  # noqa: E402

ADE_DIR = "ADEChallengeData2016"
VOC_DIR = ("VOCdevkit", "VOC2012")
SPLITS = {"ade": {"train": "training", "val": "validation"}, "voc": {"train": "train", "val": "val"}}


def _locate(root: Path, *parts: str) -> Path:
    """`root` may be the dataset folder itself or any of its parents down the native path."""
    root = Path(root)
    for k in range(len(parts), 0, -1):
        if root.parts[-k:] == tuple(parts[:k]):
            return root.joinpath(*parts[k:])
    return root.joinpath(*parts)


@DATASETS.register_module(force=True)
class SyntheticADE20KDataset(ADE20KDataset):
    """ADE20K's loader (jpg/png, reduce_zero_label) with the classes given in `metainfo`.

    ADE20KDataset itself would read other class names as a subset of its 150 and remap labels by
    name (or refuse); with no classes of its own there is no label map and labels stay as written."""

    METAINFO = dict()


@dataclass(frozen=True)
class SegData:
    """Which mmseg dataset to build and from where.

    kind: "ade" (ADE20K), "voc" (Pascal VOC 2012) or "synth-ade" (ADE layout + `classes.json`).
    """

    kind: str
    root: Path
    classes: tuple[str, ...] = field(default=())  # synth-ade only (reduced labels 0..K-1)
    palette: tuple[tuple[int, int, int], ...] = field(default=())

    @classmethod
    def synthetic(cls, root: str | Path) -> "SegData":
        """The synthetic scenes' `ade/` folder: classes.json index 0 = "other" (ignored)."""
        root = Path(root)
        meta = json.loads((root / "classes.json").read_text())
        names = meta["classes"] if isinstance(meta, dict) else meta
        palette = meta.get("palette") if isinstance(meta, dict) else None
        if not palette or len(palette) != len(names):
            rng = np.random.default_rng(0)
            palette = [[int(v) for v in rng.integers(0, 255, 3)] for _ in names]
        return cls("synth-ade", root, tuple(names[1:]), tuple(tuple(int(c) for c in p) for p in palette[1:]))

    @property
    def reduce_zero_label(self) -> bool:
        return self.kind in ("ade", "synth-ade")

    @property
    def dataset_root(self) -> Path:
        return _locate(self.root, *VOC_DIR) if self.kind == "voc" else _locate(self.root, ADE_DIR)

    def dataset(self, split: str, pipeline: list | None = None, test_mode: bool = False):
        """The mmseg dataset of a split ("train" | "val") with `pipeline` (config dicts or callables)."""
        pipeline = list(pipeline or [])
        with mmseg_scope():
            if self.kind == "voc":
                return PascalVOCDataset(
                    data_root=str(self.dataset_root), ann_file=f"ImageSets/Segmentation/{SPLITS['voc'][split]}.txt",
                    data_prefix=dict(img_path="JPEGImages", seg_map_path="SegmentationClass"),
                    pipeline=pipeline, test_mode=test_mode)
            sub = SPLITS["ade"][split]
            common = dict(data_root=str(self.dataset_root), pipeline=pipeline, test_mode=test_mode,
                          data_prefix=dict(img_path=f"images/{sub}", seg_map_path=f"annotations/{sub}"))
            if self.kind == "ade":
                return ADE20KDataset(**common)
            if self.kind == "synth-ade":
                return SyntheticADE20KDataset(
                    metainfo=dict(classes=self.classes, palette=[list(p) for p in self.palette]), **common)
        raise ValueError(f"unknown segmentation data kind {self.kind!r}")

    def metainfo(self) -> dict:
        """classes / palette as mmseg sees them (what IoUMetric needs as dataset_meta)."""
        if self.kind == "synth-ade":
            return dict(classes=self.classes, palette=[list(p) for p in self.palette],
                        reduce_zero_label=True, label_map=None)
        cls = PascalVOCDataset if self.kind == "voc" else ADE20KDataset
        return dict(classes=tuple(cls.METAINFO["classes"]), palette=[list(p) for p in cls.METAINFO["palette"]],
                    reduce_zero_label=self.reduce_zero_label, label_map=None)

    @property
    def num_classes(self) -> int:
        return len(self.metainfo()["classes"])


def file_identity(dataset, root: Path) -> dict:
    """Cache identity of the images of an mmseg dataset: relative paths, sizes and mtimes
    (`bench.data.fingerprint`; no absolute root). Annotations are not part of it: the cached
    features come from the images only (label maps are read fresh)."""
    return files_identity([Path(dataset.get_data_info(i)["img_path"]) for i in range(len(dataset))], root)


def _load_item(dataset, i: int, key: str) -> dict:
    """`dataset[i]` with an unreadable file (truncated JPEG, corrupt PNG) as one DataError line."""
    path = dataset.get_data_info(i)[key]
    if key == "img_path":
        check_jpeg_complete(path)  # cv2 decodes some truncated JPEGs without a word
    try:
        return dataset[i]
    except DataError:
        raise
    except Exception as exc:
        if not os.path.exists(path):
            raise DataError(path, "file not found") from None
        raise unreadable(path, exc) from None


class ResizedSegImages(Dataset):
    """The images of an mmseg dataset, loaded and resized to a fixed (h, w) by mmcv's transforms
    (no augmentation: what the fast variant caches), normalised with the encoder's mean/std.
    Items are (image (3,h,w) float, index): the feature cache stacks images of one size."""

    def __init__(self, data: SegData, split: str, size_hw: tuple[int, int], mean, std):
        self.data, self.split, self.size_hw = data, split, tuple(int(v) for v in size_hw)
        h, w = self.size_hw
        self.dataset = data.dataset(split, [dict(type="LoadImageFromFile"),
                                            dict(type="Resize", scale=(w, h), keep_ratio=False)])
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        img = _load_item(self.dataset, i, "img_path")["img"]  # HWC uint8 BGR (mmcv)
        x = torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1).float() / 255.0
        return (x - self.mean) / self.std, i

    def identity(self) -> dict:
        return {"kind": f"seg-{self.data.kind}", "split": self.split, "size_hw": list(self.size_hw),
                "loader": "mmcv-LoadImageFromFile+Resize(bilinear)",
                **file_identity(self.dataset, self.data.dataset_root)}

    def describe(self) -> str:
        h, w = self.size_hw
        return (f"resize={w}x{h}(keep_ratio=False,bilinear),no_aug,rgb,"
                f"mean={self.mean.flatten().tolist()},std={self.std.flatten().tolist()}")


def load_label_maps(data: SegData, split: str, size_hw: tuple[int, int] | None = None,
                    indices=None) -> list[np.ndarray]:
    """Annotations as mmseg's LoadAnnotations gives them (reduce_zero_label applied: 255 = ignore),
    optionally resized (nearest) to `size_hw`."""
    ds = data.dataset(split, [dict(type="LoadAnnotations")])
    out = []
    for i in (range(len(ds)) if indices is None else indices):
        seg = _load_item(ds, i, "seg_map_path")["gt_seg_map"]
        if size_hw is not None and seg.shape[:2] != tuple(size_hw):
            seg = mmcv.imresize(seg, (size_hw[1], size_hw[0]), interpolation="nearest")
        out.append(seg.astype(np.uint8))
    return out


__all__ = ["ADE_DIR", "ResizedSegImages", "SegData", "VOC_DIR", "file_identity", "load_label_maps"]
