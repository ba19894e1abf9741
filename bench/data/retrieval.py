"""Retrieval data in the benchmarks' native layouts, and the preprocessing the retrieval protocols use.

* Revisited Oxford / Paris (revisitop): `<root>/gnd_roxford5k.pkl` (or `gnd_rparis6k.pkl`) and
  `<root>/jpg/<name>.jpg`. The pkl holds `imlist` (database names), `qimlist` (query names) and
  `gnd[i]` = {easy, hard, junk: database indices, bbx: [x1, y1, x2, y2]}; queries are cropped to bbx.
  The pkl is read with a restricted unpickler (plain containers and numpy arrays only).
  The synthetic twin writes the same format (`gnd_synth.pkl`).
* The Met (Ypsilantis et al. 2021, github.com/nikosips/met): `<root>/ground_truth/{MET_database.json,
  mini_MET_database.json, testset.json, valset.json}` and `<root>/images/<path>` where `path` comes
  from the JSON entries: database {"id": exhibit, "path": "MET/<id>/<n>.jpg"}, queries {"path":
  "test_met/...", "MET_id": exhibit} or, for distractors, no "MET_id" (label -1).
* AmsterTime (Yildiz et al. 2022): the official release `<root>/old/NNNN.jpg` (archival photos) and
  `<root>/new/NNNN.png` (street view), a pair sharing its stem; also accepted: the
  VPR-datasets-downloader layout `<root>/images/test/{queries,database}/<same name>.jpg`.
"""
from __future__ import annotations

import _compat_pickle
import io
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2 as T

from bench.data.fingerprint import files_identity
from bench.data.images import image_header_size, open_rgb
from bench.encoders.base import Preprocess
from bench.errors import DataError, RefusedPickleError

_INTERP = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR}


# ------------------------------------------------------------------------ safe gnd unpickling
class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; any other global (os.system, eval, a class
    with a malicious __reduce__) raises `pickle.UnpicklingError` before it can be called."""

    ALLOWED: frozenset[tuple[str, str]] = frozenset({
        *(("builtins", n) for n in ("list", "dict", "tuple", "set", "frozenset", "int", "float", "complex",
                                     "str", "bytes", "bytearray", "bool")),
        *((m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")),
        *((m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # protocol-2 pickles of numpy arrays store their bytes this way
    })

    def find_class(self, module: str, name: str):
        # Python 2 names (protocol <= 2 pickles: __builtin__.set, ...) -> their Python 3 homes
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}: not a plain container "
                                     f"or numpy array (restricted unpickler)")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing persistent ids (restricted unpickler)")


def restricted_loads(data: bytes):
    return RestrictedUnpickler(io.BytesIO(data)).load()


def restricted_load(path: str | Path):
    """Unpickle a ground-truth file with `RestrictedUnpickler`. A refused global is a
    `RefusedPickleError` (a `DataError` and still a `pickle.UnpicklingError`); an empty, truncated or
    corrupt file is a `DataError`; both name the file."""
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f).load()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except pickle.UnpicklingError as exc:
        if "refusing" in str(exc):
            raise RefusedPickleError(path, f"refused by the restricted unpickler: {exc}") from None
        raise DataError(path, f"corrupt pickle ({exc})") from None
    except EOFError:
        size = os.stat(path).st_size
        raise DataError(path, "empty file (0 bytes)" if size == 0 else
                        f"truncated pickle (ends after {size} bytes)") from None
    except (OSError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError,
            ImportError) as exc:
        raise DataError(path, f"unreadable pickle ({type(exc).__name__}: {exc})") from None


# --------------------------------------------------------------------------------- revisited
@dataclass
class RevisitedGnd:
    imlist: list[str]
    qimlist: list[str]
    gnd: list[dict]  # per query: easy, hard, junk (lists of database indices), bbx (x1, y1, x2, y2)

    @property
    def bbxs(self) -> list[tuple[float, float, float, float] | None]:
        return [tuple(float(v) for v in g["bbx"]) if g.get("bbx") is not None else None for g in self.gnd]


def load_gnd(path: str | Path) -> RevisitedGnd:
    """Read and validate a revisitop ground-truth pkl (restricted unpickler)."""
    cfg = restricted_load(path)
    try:
        return _parse_gnd(path, cfg)
    except DataError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise DataError(path, f"malformed revisitop gnd file ({type(exc).__name__}: {exc})") from None


def _parse_gnd(path, cfg) -> RevisitedGnd:
    if not isinstance(cfg, dict) or not {"imlist", "qimlist", "gnd"} <= set(cfg):
        raise DataError(path, "not a revisitop gnd file (expected keys imlist, qimlist, gnd)")
    imlist, qimlist = [str(s) for s in cfg["imlist"]], [str(s) for s in cfg["qimlist"]]
    if len(cfg["gnd"]) != len(qimlist):
        raise DataError(path, f"{len(cfg['gnd'])} gnd entries for {len(qimlist)} queries")
    gnd = []
    for i, g in enumerate(cfg["gnd"]):
        entry = {k: [int(v) for v in np.asarray(g.get(k, []), dtype=np.int64).ravel()]
                 for k in ("easy", "hard", "junk")}
        for k, ids in entry.items():
            if ids and (min(ids) < 0 or max(ids) >= len(imlist)):
                raise DataError(path, f"query {i} has {k} index out of range 0..{len(imlist) - 1}")
        bbx = g.get("bbx")
        entry["bbx"] = None if bbx is None else [float(v) for v in np.asarray(bbx, dtype=np.float64).ravel()]
        if entry["bbx"] is not None and len(entry["bbx"]) != 4:
            raise DataError(path, f"query {i} bbx must have 4 numbers, got {entry['bbx']}")
        gnd.append(entry)
    return RevisitedGnd(imlist, qimlist, gnd)


def revisited_image_path(root: Path, name: str) -> Path:
    """revisitop's `config_imname`: <root>/jpg/<name>.jpg."""
    return Path(root) / "jpg" / f"{name}.jpg"


# ---------------------------------------------------------------------------------- datasets
@dataclass
class ImageListDataset:
    """Images by path, each optionally cropped to a box (x1, y1, x2, y2) first: (tensor, index)."""

    paths: Sequence[Path]
    transform: Callable | None = None
    boxes: Sequence[tuple[float, float, float, float] | None] | None = None
    kind: str = "imagelist"

    def __post_init__(self) -> None:
        self.paths = [Path(p) for p in self.paths]
        if self.boxes is not None and len(self.boxes) != len(self.paths):
            raise ValueError("one box per image (or None) is required")

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> Image.Image:
        image = open_rgb(self.paths[i])
        box = self.boxes[i] if self.boxes is not None else None
        if box is not None:
            image = image.crop(tuple(box))  # PIL rounds the float box, as revisitop's loader does
        return image

    def __getitem__(self, i: int):
        image = self.load(i)
        return (self.transform(image) if self.transform else image), i

    def identity(self) -> dict:
        """Feature-cache key: paths relative to their common folder, sizes, mtimes and crop boxes
        (`bench.data.fingerprint`; the absolute folder is not part of it)."""
        common = Path(os.path.commonpath([str(p.parent) for p in self.paths])) if self.paths else Path()
        boxes = [self.boxes[i] if self.boxes is not None else None for i in range(len(self.paths))]
        return {"kind": self.kind, **files_identity(self.paths, common, boxes)}


def revisited_datasets(root: Path, gnd: RevisitedGnd, transform: Callable) -> tuple[ImageListDataset, ImageListDataset]:
    """(database, queries cropped to their bbx)."""
    db = ImageListDataset([revisited_image_path(root, n) for n in gnd.imlist], transform, kind="revisited-db")
    q = ImageListDataset([revisited_image_path(root, n) for n in gnd.qimlist], transform, gnd.bbxs,
                         kind="revisited-query-bbx")
    return db, q


# ---------------------------------------------------------------------------------------- Met
@dataclass
class MetSplit:
    paths: list[Path]
    labels: np.ndarray  # exhibit id; -1 = distractor


@dataclass
class MetData:
    database: MetSplit
    test: MetSplit
    val: MetSplit | None
    database_file: str
    layout: dict = field(default_factory=dict)


def met_ground_truth_dir(root: Path) -> Path:
    root = Path(root)
    return root / "ground_truth" if (root / "ground_truth").is_dir() else root


def load_met(root: str | Path, database: str = "full") -> MetData:
    """The Met ground truth and image paths (see the module docstring for the layout)."""
    root = Path(root)
    gt = met_ground_truth_dir(root)
    images = root / "images"
    db_file = "MET_database.json" if database == "full" else "mini_MET_database.json"

    def read(name: str, key: str) -> MetSplit:
        try:
            entries = json.loads((gt / name).read_text())
            paths = [images / e["path"] for e in entries]
            labels = np.array([int(e[key]) if key in e else -1 for e in entries], dtype=np.int64)
        except FileNotFoundError:
            raise DataError(gt / name, "file not found") from None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise DataError(gt / name, f"unreadable Met ground truth ({type(exc).__name__}: {exc})") from None
        return MetSplit(paths, labels)

    db = read(db_file, "id")
    test = read("testset.json", "MET_id")
    val = read("valset.json", "MET_id") if (gt / "valset.json").exists() else None
    return MetData(db, test, val, db_file,
                   {"ground_truth": str(gt), "images": str(images), "database_file": db_file})


# --------------------------------------------------------------------------------- AmsterTime
@dataclass
class AmsterTimePairs:
    old: list[Path]  # archival photos
    new: list[Path]  # street-view images; new[i] is the pair of old[i]
    layout: str


def load_amstertime(root: str | Path) -> AmsterTimePairs:
    root = Path(root)
    for base in (root, root / "raw_data", root / "AmsterTime-v1.0"):
        if (base / "old").is_dir() and (base / "new").is_dir():
            old = {p.stem: p for p in (base / "old").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
            new = {p.stem: p for p in (base / "new").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
            layout = "official old/ new/"
            break
    else:
        test = root / "images" / "test"
        if not ((test / "queries").is_dir() and (test / "database").is_dir()):
            raise FileNotFoundError(f"no AmsterTime layout under {root}: expected old/ + new/ (official release) "
                                    f"or images/test/{{queries,database}}/ (VPR-datasets-downloader)")
        old = {p.name: p for p in (test / "queries").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
        new = {p.name: p for p in (test / "database").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
        layout = "vpr images/test/{queries,database}/"
    keys = sorted(set(old) & set(new))
    if not keys:
        raise FileNotFoundError(f"no AmsterTime pairs (matching names in old/new) under {root}")
    return AmsterTimePairs([old[k] for k in keys], [new[k] for k in keys], layout)


# ------------------------------------------------------------------------------ preprocessing
def _normalize(p: Preprocess):
    return [T.ToDtype(torch.float32, scale=True), T.Normalize(p.mean, p.std)]


def snap_to_patch(size: float, patch: int) -> int:
    """The nearest multiple of the patch size (at least one patch)."""
    return max(patch, int(round(size / patch)) * patch)


@dataclass(frozen=True)
class SquareResize:
    """Resize to size x size (aspect ratio not kept), the retrieval protocol for Oxford/Paris/AmsterTime."""

    preprocess: Preprocess
    size: int = 224

    def __post_init__(self) -> None:
        p = self.preprocess
        object.__setattr__(self, "_fn", T.Compose([
            T.PILToTensor(),
            T.Resize((self.size, self.size), interpolation=_INTERP.get(p.interpolation, T.InterpolationMode.BICUBIC),
                     antialias=True),
            *_normalize(p)]))

    def describe(self) -> str:
        p = self.preprocess
        return f"resize={self.size}x{self.size},interp={p.interpolation},mean={list(p.mean)},std={list(p.std)}"

    def __call__(self, image):
        return self._fn(image)


@dataclass(frozen=True)
class PatchMultipleResize:
    """Keep the native resolution, each side resized to its nearest multiple of the patch size (Met)."""

    preprocess: Preprocess

    def target(self, width: int, height: int) -> tuple[int, int]:
        p = self.preprocess.patch_size
        return snap_to_patch(height, p), snap_to_patch(width, p)

    def describe(self) -> str:
        p = self.preprocess
        return (f"native-size-snapped-to-patch={p.patch_size},interp={p.interpolation},"
                f"mean={list(p.mean)},std={list(p.std)}")

    def __call__(self, image):
        p = self.preprocess
        x = T.PILToTensor()(image)
        x = T.Resize(self.target(image.width, image.height),
                     interpolation=_INTERP.get(p.interpolation, T.InterpolationMode.BICUBIC), antialias=True)(x)
        return T.Compose(_normalize(p))(x)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header only (no decode)."""
    return image_header_size(path)


def size_buckets(dataset: ImageListDataset, transform: PatchMultipleResize) -> dict[tuple[int, int], list[int]]:
    """Indices grouped by the (H, W) the transform will produce, so that a batch shares one size."""
    buckets: dict[tuple[int, int], list[int]] = {}
    for i, path in enumerate(dataset.paths):
        w, h = image_size(path)
        box = dataset.boxes[i] if dataset.boxes is not None else None
        if box is not None:
            w, h = int(round(box[2])) - int(round(box[0])), int(round(box[3])) - int(round(box[1]))
        buckets.setdefault(transform.target(w, h), []).append(i)
    return dict(sorted(buckets.items()))


def subset(dataset: ImageListDataset, indices: Sequence[int], kind: str | None = None) -> ImageListDataset:
    return ImageListDataset([dataset.paths[i] for i in indices], dataset.transform,
                            None if dataset.boxes is None else [dataset.boxes[i] for i in indices],
                            kind=kind or dataset.kind)


__all__ = ["AmsterTimePairs", "ImageListDataset", "MetData", "MetSplit", "PatchMultipleResize", "RestrictedUnpickler",
           "RevisitedGnd", "SquareResize", "load_amstertime", "load_gnd", "load_met", "restricted_load",
           "restricted_loads", "revisited_datasets", "revisited_image_path", "size_buckets", "snap_to_patch", "subset"]
