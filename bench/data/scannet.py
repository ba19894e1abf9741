"""Readers for ScanNet as Lexicon3D consumes it: the OpenScene export (posed 320x240 RGB-D views and
the `_vh_clean_2.pth` point clouds), Lexicon3D's 20-class label files and registration poses, and
M3DRef-CLIP's per-scene instance files (for ScanRefer's ground-truth boxes).

Layout under one root (BENCH_DATA/scannet by default; the synthetic twin writes the same):

    scannet_2d/intrinsics.txt                      optional 4x4 (else ScanNet's default depth K at 320x240)
    scannet_2d/<scene>/{color/<f>.jpg, depth/<f>.png (uint16 mm), pose/<f>.txt (4x4 camera-to-world)}
    scannet_3d/{train,val}/<scene>_vh_clean_2.pth  torch.save((coords f64, colors, labels 0..19 / 255))
    meta_data/scannetv2_{train,val}.txt            split lists (else: the scannet_3d folders)
    process_ply/label_20/<scene>.pth               optional: numpy int per vertex, -1 ignore
    lexicon3d/unified_pose/<scene>.pt              registration pose, 4x4 float32 tensor
    scannetv2/{train,val}/<scene>.pth              M3DRef-CLIP scene dict (instance_ids per vertex)

Pickled files are read with `torch.load(weights_only=True)` allowing only numpy arrays and dtypes,
never arbitrary objects. See docs/3d.md and shared/docs/lexicon3d.md §1.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.errors import DataError

WIDTH, HEIGHT = 320, 240  # the OpenScene export resolution, where all projection happens
DEPTH_SCALE = 1000.0  # png millimetres -> metres
# ScanNet's default depth intrinsics at 640x480, adjusted to 320x240 (openscene adjust_intrinsic)
DEFAULT_K = np.array([[577.870605 * 320 / 640, 0, 319.5 * 319 / 639],
                      [0, 577.870605 * 240 / 480, 239.5 * 239 / 479], [0, 0, 1.0]])
# the ScanNet-20 benchmark classes: nyu40 ids -> 0..19 (everything else ignored)
NYU40_OF_20 = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
CLASSES_20 = ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
              "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub",
              "otherfurniture")
IGNORE = -1  # Lexicon3D's label_20 ignore value (openscene's .pth uses 255)


def nyu40_to_20(nyu40: np.ndarray) -> np.ndarray:
    """Standard ScanNet-20 mapping (variant (a) of the doc): nyu40 id -> 0..19, anything else -> IGNORE."""
    lut = np.full(256, IGNORE, np.int64)
    for i, n in enumerate(NYU40_OF_20):
        lut[n] = i
    return lut[np.clip(np.asarray(nyu40, np.int64), 0, 255)]


def _numpy_safe_globals() -> list:
    import numpy.dtypes as dtypes

    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype] + [
        getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]


def safe_torch_load(path: str | Path):
    """A torch-saved file of tensors / numpy arrays / tuples / dicts; anything else is refused."""
    import pickle

    import torch
    from torch.serialization import safe_globals

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        with safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()
        raise DataError(path, f"refused or corrupt pickle (only tensors and numpy arrays are allowed): "
                              f"{first[-1] if first else exc}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise DataError(path, f"unreadable torch file ({type(exc).__name__}: {str(exc)[:200]})") from None


def read_matrix(path: Path) -> np.ndarray:
    try:
        rows = [[float(x) for x in line.split()] for line in Path(path).read_text().splitlines() if line.strip()]
        M = np.array(rows, float)
    except (OSError, ValueError) as exc:
        raise DataError(path, f"not a whitespace-separated matrix ({exc})") from None
    if M.shape != (4, 4):
        raise DataError(path, f"expected a 4x4 matrix, got shape {M.shape}")
    return M


def check_rigid(T: np.ndarray, where: Path | str, tol: float = 1e-3) -> np.ndarray:
    """A 4x4 rigid transform (orthonormal R, det +1, last row 0 0 0 1), else a DataError naming it."""
    T = np.asarray(T, float)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise DataError(where, "pose is not a finite 4x4 matrix")
    R = T[:3, :3]
    err = float(np.abs(R @ R.T - np.eye(3)).max())
    if err > tol or abs(np.linalg.det(R) - 1) > tol or np.abs(T[3] - [0, 0, 0, 1]).max() > tol:
        raise DataError(where, f"pose is not a rigid transform (|R R^T - I| = {err:.3g}, det R = "
                               f"{np.linalg.det(R):.4f}, last row {T[3].round(4).tolist()})")
    return T


def read_pose(path: Path) -> np.ndarray:
    return check_rigid(read_matrix(path), path)


def read_depth(path: Path, size: tuple[int, int] = (WIDTH, HEIGHT)) -> np.ndarray:
    """Depth in metres (0 = invalid) from a uint16 millimetre PNG of exactly `size` (W, H)."""
    from bench.data.nyu import read_png16

    mm = read_png16(Path(path))
    if (mm.shape[1], mm.shape[0]) != tuple(size):
        raise DataError(path, f"depth map is {mm.shape[1]}x{mm.shape[0]}, expected {size[0]}x{size[1]} "
                              "(the OpenScene export resizes depth to 320x240)")
    return mm.astype(np.float32) / DEPTH_SCALE


def _frame_key(p: Path) -> int:
    m = re.fullmatch(r"\d+", p.stem)
    return int(p.stem) if m else 10 ** 12


@dataclass(frozen=True)
class ScanView:
    frame: int
    color: Path
    depth: Path
    pose: Path


def scene_views(root: Path, scene: str) -> list[ScanView]:
    """Every exported view of a scene, sorted by frame number; a colour frame without its depth or
    pose is a DataError naming the missing file (never silently dropped)."""
    d = Path(root) / "scannet_2d" / scene
    colors = sorted((d / "color").glob("*.jpg"), key=_frame_key)
    if not colors:
        raise DataError(d / "color", f"no exported views of {scene} (expected color/<frame>.jpg)")
    views = []
    for c in colors:
        v = ScanView(_frame_key(c), c, d / "depth" / f"{c.stem}.png", d / "pose" / f"{c.stem}.txt")
        for p in (v.depth, v.pose):
            if not p.is_file():
                raise DataError(p, f"missing for view {c.name} of {scene}")
        views.append(v)
    return views


def intrinsics(root: Path) -> np.ndarray:
    """The global 3x3 K at 320x240: scannet_2d/intrinsics.txt if present, else ScanNet's default."""
    f = Path(root) / "scannet_2d" / "intrinsics.txt"
    return read_matrix(f)[:3, :3] if f.exists() else DEFAULT_K.copy()


def split_scenes(root: Path, split: str) -> list[str]:
    """Scene ids of a split: meta_data/scannetv2_<split>.txt, restricted to scenes with a point cloud."""
    root = Path(root)
    have = sorted(p.name.split("_vh")[0] for p in (root / "scannet_3d" / split).glob("*_vh_clean_2.pth"))
    listing = root / "meta_data" / f"scannetv2_{split}.txt"
    if listing.exists():
        wanted = [s.strip() for s in listing.read_text().split() if s.strip()]
        have_set = set(have)
        return [s for s in wanted if s in have_set]
    return have


@dataclass
class ScenePoints:
    scene: str
    split: str
    coords: np.ndarray  # (N, 3) float64, raw (unaligned) mesh-vertex frame
    colors: np.ndarray  # (N, 3) in [-1, 1]
    labels: np.ndarray  # (N,) int64 0..19, IGNORE


def load_points(root: Path, split: str, scene: str) -> ScenePoints:
    """The scene's vertices (OpenScene .pth); labels from Lexicon3D's label_20 file when present,
    else the .pth's own 20-class labels (255 -> IGNORE)."""
    path = Path(root) / "scannet_3d" / split / f"{scene}_vh_clean_2.pth"
    obj = safe_torch_load(path)
    if not (isinstance(obj, (tuple, list)) and len(obj) >= 2):
        raise DataError(path, f"expected (coords, colors, labels), got {type(obj).__name__}")
    coords = np.asarray(obj[0], np.float64)
    if coords.ndim != 2 or coords.shape[1] != 3 or not np.all(np.isfinite(coords)):
        raise DataError(path, f"coords must be finite (N, 3), got shape {coords.shape}")
    colors = np.asarray(obj[1], np.float32)
    labels = np.asarray(obj[2], np.int64) if len(obj) > 2 else np.full(len(coords), IGNORE)
    labels = np.where(labels == 255, IGNORE, labels)
    l20 = Path(root) / "process_ply" / "label_20" / f"{scene}.pth"
    if l20.exists():
        labels = np.asarray(safe_torch_load(l20), np.int64).reshape(-1)
    if len(labels) != len(coords) or len(colors) != len(coords):
        raise DataError(path, f"{len(coords)} points but {len(colors)} colours / {len(labels)} labels")
    bad = (labels != IGNORE) & ((labels < 0) | (labels >= 20))
    if bad.any():
        raise DataError(l20 if l20.exists() else path, f"labels outside 0..19 and {IGNORE}: {np.unique(labels[bad])[:5]}")
    return ScenePoints(scene, split, coords, colors, labels)


def load_instances(root: Path, split: str, scene: str, n_points: int) -> np.ndarray:
    """Per-vertex instance ids (ScanNet aggregation objectId, -1 none) from M3DRef-CLIP's scene file."""
    path = Path(root) / "scannetv2" / split / f"{scene}.pth"
    obj = safe_torch_load(path)
    if not isinstance(obj, dict) or "instance_ids" not in obj:
        raise DataError(path, "expected M3DRef-CLIP's scene dict with 'instance_ids'")
    ids = np.asarray(obj["instance_ids"], np.int64).reshape(-1)
    if len(ids) != n_points:
        raise DataError(path, f"{len(ids)} instance ids for {n_points} vertices (the vh_clean_2 vertex order)")
    return ids


def read_unified_pose(root: Path, scene: str) -> np.ndarray:
    """Lexicon3D's registration pose for a scene (`pos_2_transformed = R pos_2 + t`)."""
    import torch

    path = Path(root) / "lexicon3d" / "unified_pose" / f"{scene}.pt"
    T = safe_torch_load(path)
    if isinstance(T, torch.Tensor):
        T = T.double().numpy()
    return check_rigid(np.asarray(T, float), path)


def object_boxes(coords: np.ndarray, instances: np.ndarray) -> dict[int, np.ndarray]:
    """Axis-aligned (min xyz, max xyz) box of each instance's points (as M3DRef-CLIP's aabb)."""
    out = {}
    for iid in np.unique(instances):
        if iid < 0:
            continue
        pts = coords[instances == iid]
        out[int(iid)] = np.concatenate([pts.min(0), pts.max(0)])
    return out


__all__ = ["CLASSES_20", "DEFAULT_K", "HEIGHT", "IGNORE", "NYU40_OF_20", "ScanView", "ScenePoints",
           "WIDTH", "check_rigid", "intrinsics", "load_instances", "load_points", "nyu40_to_20", "object_boxes",
           "read_depth", "read_pose", "read_unified_pose", "safe_torch_load", "scene_views", "split_scenes"]
