"""ImageFolder classification data: `root/<split>/<class>/*.JPEG` (ImageNet and the synthetic twin).

A class folder without any image is not a class: it is left out with a warning naming it (listed in
`empty_classes`), so an empty leftover folder never shifts the class indices or the class count.
When the sibling split (train <-> val) is present with class folders, both must then have the same
classes (same names, hence the same indices), or the dataset is refused (`DataError`).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.data.fingerprint import files_identity
from bench.data.images import open_rgb
from bench.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SIBLING_SPLITS = {"train": "val", "val": "train"}


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def class_folders(split_dir: Path) -> tuple[list[str], list[str]]:
    """(classes with at least one image, empty class folders), both sorted. Stops at the first image
    of each folder, so checking a sibling split stays cheap."""
    full, empty = [], []
    for d in sorted(os.scandir(split_dir), key=lambda e: e.name):
        if not d.is_dir():
            continue
        with os.scandir(d.path) as it:
            (full if any(e.is_file() and _is_image(e.name) for e in it) else empty).append(d.name)
    return full, empty


@dataclass
class ImageFolder:
    root: Path
    split: str
    transform: Callable | None = None
    check_splits: bool = True  # refuse when the sibling split (train <-> val) has other classes

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        folder = self.root / self.split
        if not folder.is_dir():
            raise FileNotFoundError(f"no split folder {folder}")
        self.classes, self.empty_classes = class_folders(folder)
        for c in self.empty_classes:
            warnings.warn(f"{folder / c}: class folder without images, left out "
                          f"({len(self.classes)} classes in {folder})", stacklevel=2)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples: list[tuple[Path, int]] = [
            (p, self.class_to_idx[c])
            for c in self.classes
            for p in sorted((folder / c).iterdir())
            if p.suffix.lower() in IMAGE_EXTENSIONS
        ]
        if not self.samples:
            raise FileNotFoundError(f"no images under {folder}/<class>/")
        other = SIBLING_SPLITS.get(self.split)
        if self.check_splits and other and (self.root / other).is_dir():
            theirs, _ = class_folders(self.root / other)
            if theirs and theirs != self.classes:  # (a sibling without class folders is not an ImageFolder split)
                mine, yours = sorted(set(self.classes) - set(theirs)), sorted(set(theirs) - set(self.classes))
                raise DataError(self.root, f"{self.split} and {other} have different classes (after leaving out "
                                           f"empty folders): only in {self.split}: {mine or '-'}, only in {other}: "
                                           f"{yours or '-'}; class indices would not match")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def targets(self) -> list[int]:
        return [y for _, y in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        image = open_rgb(path)
        return (self.transform(image) if self.transform else image), label

    def identity(self) -> dict:
        """Feature-cache key of the split: relative paths, sizes, mtimes and labels
        (`bench.data.fingerprint`; the absolute root is not part of it)."""
        return {"kind": "imagefolder", "split": self.split, "classes": len(self.classes),
                **files_identity([p for p, _ in self.samples], self.root, [y for _, y in self.samples])}
