"""ImageFolder classification data: `root/<split>/<class>/*.JPEG` (ImageNet and the synthetic twin)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class ImageFolder:
    root: Path
    split: str
    transform: Callable | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        folder = self.root / self.split
        if not folder.is_dir():
            raise FileNotFoundError(f"no split folder {folder}")
        self.classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples: list[tuple[Path, int]] = [
            (p, self.class_to_idx[c])
            for c in self.classes
            for p in sorted((folder / c).iterdir())
            if p.suffix.lower() in IMAGE_EXTENSIONS
        ]
        if not self.samples:
            raise FileNotFoundError(f"no images under {folder}/<class>/")

    @property
    def targets(self) -> list[int]:
        return [y for _, y in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        with Image.open(path) as im:
            image = im.convert("RGB")
        return (self.transform(image) if self.transform else image), label

    def identity(self) -> dict:
        """Content-addressed enough for the feature cache: file list with sizes."""
        h = hashlib.sha256()
        for p, y in self.samples:
            h.update(f"{p.relative_to(self.root)}\t{p.stat().st_size}\t{y}\n".encode())
        return {"kind": "imagefolder", "root": str(self.root.resolve()), "split": self.split,
                "n": len(self.samples), "files_sha256": h.hexdigest()[:16]}
