"""Encoders and a hashing file sink used by the layout writers."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np

JPEG_QUALITY = 95


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=quality, optimize=False)
    return buf.getvalue()


def encode_png(arr: np.ndarray, compress_level: int = 3) -> bytes:
    """uint8 -> 8-bit grey PNG; uint16 -> 16-bit grey PNG (mode I;16)."""
    from PIL import Image

    arr = np.ascontiguousarray(arr)
    if arr.dtype == np.uint16:
        im = Image.fromarray(arr, mode="I;16") if _pil_needs_mode() else Image.fromarray(arr)
    elif arr.dtype == np.uint8:
        im = Image.fromarray(arr)
    else:
        raise TypeError(f"unsupported dtype {arr.dtype}")
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def _pil_needs_mode() -> bool:
    import PIL

    return int(PIL.__version__.split(".")[0]) < 10


def depth_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """Metres -> uint16 millimetres (rounded); 0 stays 0 (= invalid); clipped to 65535."""
    mm = np.rint(np.asarray(depth_m, np.float64) * 1000.0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def encode_depth_png(depth_m: np.ndarray) -> bytes:
    return encode_png(depth_to_mm(depth_m))


def fmt_matrix(M: np.ndarray) -> str:
    return "\n".join(" ".join(f"{float(x):.8f}" for x in row) for row in np.asarray(M)) + "\n"


_NUM_LIST = re.compile(r"\[\s+([-+0-9.eE,\s]+?)\s+\]")


def dumps_json(obj) -> bytes:
    """Indented JSON with flat lists of numbers kept on one line."""
    text = json.dumps(obj, indent=1, sort_keys=False)
    text = _NUM_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
    return (text + "\n").encode()


class Sink:
    """Writes files under ``root`` and remembers a SHA-256 of each (for the manifest's content hash)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.hashes: dict[str, str] = {}
        self._dirs: set[Path] = set()

    def write(self, rel: str, data: bytes) -> Path:
        path = self.root / rel
        parent = path.parent
        if parent not in self._dirs:
            parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(parent)
        with open(path, "wb") as f:
            f.write(data)
        self.hashes[rel] = hashlib.sha256(data).hexdigest()
        return path

    def content_hash(self) -> str:
        h = hashlib.sha256()
        for rel in sorted(self.hashes):
            h.update(f"{rel}\t{self.hashes[rel]}\n".encode())
        return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
