"""KITTI depth, Eigen split with the annotated (densified) ground truth — the BTS / AdaBins / DINOv2 setup.

Layout::

    root/
      eigen_train_files_with_gt.txt, eigen_test_files_with_gt.txt, lines "image gt focal":
        2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000005.png
        2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/0000000005.png 721.5377
      2011_09_26/2011_09_26_drive_0001_sync/image_02/data/*.png           (KITTI raw, left colour camera)
      data_depth_annotated/2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/*.png

Entries whose ground truth is "None" are skipped. The annotated-depth archive's own `train/` and
`val/` sub-folders are searched too, so it can be unpacked as is. Depth = value / 256 m, 0 = invalid,
capped at 80 m. Image and depth are KB-cropped to 352x1216 (bottom rows, horizontally centred).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from bench.data.nyu import DepthDataset, DepthSample, find_split_file, parse_split_file

KITTI_DEPTH_SCALE = 256.0
KITTI_MAX_DEPTH = 80.0
KB_CROP = (352, 1216)  # (height, width)
KITTI_SPLIT_FILES = {
    "train": ("eigen_train_files_with_gt.txt", "kitti_eigen_train.txt", "splits/eigen_train_files_with_gt.txt",
              "train_test_inputs/eigen_train_files_with_gt.txt"),
    "test": ("eigen_test_files_with_gt.txt", "kitti_eigen_test.txt", "splits/eigen_test_files_with_gt.txt",
             "train_test_inputs/eigen_test_files_with_gt.txt"),
}
IMAGE_DIRS = ("", "raw", "input")
GT_DIRS = ("data_depth_annotated", "data_depth_annotated/train", "data_depth_annotated/val", "gt_depth")


def kb_crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the KB crop: the bottom 352 rows, the central 1216 columns."""
    h, w = KB_CROP
    if height < h or width < w:
        raise ValueError(f"KITTI frame {width}x{height} is smaller than the KB crop {w}x{h}")
    top, left = height - h, int((width - w) / 2)
    return left, top, left + w, top + h


class KITTIDepth(DepthDataset):
    name = "kitti-eigen"
    depth_scale = KITTI_DEPTH_SCALE
    max_depth = KITTI_MAX_DEPTH
    crop_name = "kb-352x1216"

    def __init__(self, root: str | Path, split: str = "train", transform: Callable | None = None,
                 split_file: str | Path | None = None, kb_crop: bool = True):
        root = Path(root)
        if split not in KITTI_SPLIT_FILES:
            raise ValueError(f"KITTI split must be train or test, got {split!r}")
        split_path = Path(split_file) if split_file else find_split_file(root, KITTI_SPLIT_FILES[split])
        self.kb_crop = kb_crop
        if not kb_crop:
            self.crop_name = "none"
        samples, missing = [], []
        for img, gt, focal in parse_split_file(split_path):
            image = next((root / d / img for d in IMAGE_DIRS if (root / d / img).is_file()), None)
            depth = next((root / d / gt for d in GT_DIRS if (root / d / gt).is_file()), None)
            if image is None or depth is None:
                missing.append(img if image is None else gt)
                continue
            drive = Path(img).parts[1] if len(Path(img).parts) > 1 else Path(img).parts[0]
            samples.append(DepthSample(image, depth, focal, drive))
        if missing:
            raise FileNotFoundError(f"KITTI {split}: {len(missing)} listed file(s) missing under {root}, e.g. "
                                    f"{missing[0]} (images under root/<date>/, ground truth under "
                                    f"root/data_depth_annotated/)")
        samples.sort(key=lambda s: str(s.image))
        super().__init__(root, split, samples, transform)
        self.split_file = split_path

    def crop_box(self, width: int, height: int):
        return kb_crop_box(width, height) if self.kb_crop else None
