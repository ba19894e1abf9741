"""Lifting frozen 2D patch features onto a scene's point cloud, as Lexicon3D's `fusion_util.py` does
(shared/docs/lexicon3d.md §2): per view, project every vertex with the camera-to-world pose and the
global 320x240 intrinsics (rounded pixel), drop a 10-pixel border, keep points whose depth agrees
within 25 % of the depth map, upsample the patch grid bicubically to 240x320, gather at the pixel and
average over the views that see the point.

Per-view patch features go through the project's feature cache (`EvalContext.features`); the lifted
per-scene point features (fp16 `feat` [N, C] + bool `mask` [N] = seen by >= 1 view) are cached once
per (view-feature entry = encoder identity + images + transform, point clouds, lifting parameters,
view subset) under `<cache>/lifted3d/`, and reused by every head.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.data.fingerprint import files_identity
from bench.data.scannet import HEIGHT, WIDTH, ScanView, read_depth, read_pose
from bench.errors import DataError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # Lexicon3D normalises DINOv2 input with CLIP's stats (quirk 1)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class LiftParams:
    visibility_threshold: float = 0.25  # |depth - z| <= thr * depth
    cut_bound: int = 10  # pixels dropped at each image border
    upsample: str = "bicubic"  # patch grid -> 240x320 (align_corners=False)
    normalisation: str = "clip"  # "clip" (Lexicon3D, quirk 1) or "encoder" (the encoder's own mean/std)
    block: int = -1  # which of the encoder's last blocks (only the last is used by Lexicon3D)

    def __post_init__(self) -> None:
        if self.normalisation not in ("clip", "encoder"):
            raise ValueError("normalisation must be 'clip' or 'encoder'")
        if self.upsample not in ("bicubic", "bilinear"):
            raise ValueError("upsample must be 'bicubic' or 'bilinear'")


def project(points: np.ndarray, cam_to_world: np.ndarray, K: np.ndarray, depth: np.ndarray | None,
            vis_thr: float = 0.25, cut: int = 10, size: tuple[int, int] = (WIDTH, HEIGHT)):
    """PointCloudToImageMapper.compute_mapping: (row, col, visible mask) per point."""
    W, H = size
    hom = np.concatenate([points, np.ones((len(points), 1))], 1)
    p = (np.linalg.inv(cam_to_world) @ hom.T)[:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = p[0] * K[0, 0] / p[2] + K[0, 2]
        v = p[1] * K[1, 1] / p[2] + K[1, 2]
    finite = np.isfinite(u) & np.isfinite(v)
    ui = np.where(finite, np.round(np.where(finite, u, 0)), -1).astype(np.int64)
    vi = np.where(finite, np.round(np.where(finite, v, 0)), -1).astype(np.int64)
    mask = finite & (ui >= cut) & (vi >= cut) & (ui < W - cut) & (vi < H - cut)
    if depth is not None:
        d = depth[vi[mask], ui[mask]]
        mask[mask] = np.abs(d - p[2][mask]) <= vis_thr * d
    return vi, ui, mask


def upsample(grid: torch.Tensor, mode: str = "bicubic", size=(HEIGHT, WIDTH), chunk: int = 256) -> torch.Tensor:
    """(C, h, w) -> (C, H, W) fp32, in channel chunks (a 1024-d map at 240x320 is 315 MB)."""
    outs = [F.interpolate(grid[None, s:s + chunk].float(), size=size, mode=mode, align_corners=False)[0]
            for s in range(0, grid.shape[0], chunk)]
    return torch.cat(outs)


# --- the bicubic upsample evaluated at the gathered pixels only, bit for bit -------------------------
# A view sees a few thousand of the 76,800 pixels the full 240x320 upsample computes (0.19 s per view
# for a 192-d grid: most of the lifting time). ATen's CPU kernel is separable: output = sum over the 4
# row taps of w_y * (sum over the 4 column taps of w_x * grid), each sum accumulated as
# `acc = v1 * w1`, then fused multiply-adds of taps 0, 2, 3, with float32 weights from fused
# polynomial evaluation. `_cubic_taps` and `_accumulate` reproduce that; `_exact_ok` compares the result
# with F.interpolate on the first real grid of each shape in the process and falls back to the full
# upsample where a build or CPU computes it differently, so the lifted features never change.

def _fma(a, b, c):
    """float32 a * b + c rounded once (via float64: the product is exact there)."""
    return (np.float64(a) * np.float64(b) + np.float64(c)).astype(np.float32)


def _cubic_taps(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ATen's bicubic (A = -0.75, align_corners=False) source indices (n_out, 4), clamped to the
    input, and float32 weights (n_out, 4) per output index."""
    f, A = np.float32, np.float32(-0.75)
    src = _fma(f(n_in) / f(n_out), np.arange(n_out).astype(f) + f(0.5), f(-0.5))
    floor = np.floor(src)
    t = np.minimum(np.maximum(src - floor, f(0)), f(1)).astype(f)

    def near(x):  # ((A + 2) x - (A + 3)) x x + 1
        return (_fma(A + f(2), x, -(A + f(3))) * x * x + f(1)).astype(f)

    def far(x):  # ((A x - 5 A) x + 8 A) x - 4 A
        return (_fma(_fma(A, x, -(f(5) * A)), x, f(8) * A) * x - f(4) * A).astype(f)

    x2 = (f(1) - t).astype(f)
    w = np.stack([far((t + f(1)).astype(f)), near(t), near(x2), far((x2 + f(1)).astype(f))], 1)
    idx = np.clip(floor.astype(np.int64)[:, None] + np.arange(-1, 3)[None], 0, n_in - 1)
    return torch.from_numpy(idx), torch.from_numpy(w)


def _accumulate(taps) -> torch.Tensor:
    """sum of (values, weight) over the 4 taps in the kernel's order: tap 1's product, then fused
    multiply-adds of taps 0, 2, 3."""
    (v0, w0), (v1, w1), (v2, w2), (v3, w3) = taps
    acc = v1 * w1
    for v, w in ((v0, w0), (v2, w2), (v3, w3)):
        acc.addcmul_(v, w)
    return acc


def gather_upsampled(grid: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                     size=(HEIGHT, WIDTH)) -> torch.Tensor:
    """`upsample(grid, "bicubic", size)[:, rows, cols].T` (P, C) without the full map: the column pass
    at the patch grid's rows, then the row pass at the requested pixels only."""
    C, h, w = grid.shape
    g = grid.permute(1, 2, 0).float()  # (h, w, C)
    ix, wx = _cubic_taps(w, size[1])
    across = _accumulate([(g.index_select(1, ix[:, j]), wx[:, j, None]) for j in range(4)]).view(h * size[1], C)
    iy, wy = _cubic_taps(h, size[0])
    iy, wy = iy[rows] * size[1] + cols[:, None], wy[rows]
    return _accumulate([(across.index_select(0, iy[:, j]), wy[:, j, None]) for j in range(4)])


_EXACT: dict[tuple, bool] = {}  # (h, w, C, size) -> the gather reproduces F.interpolate on this machine


def _exact_ok(grid: torch.Tensor, size=(HEIGHT, WIDTH)) -> bool:
    key = (*grid.shape, *size)
    if key not in _EXACT:  # every pixel, 16 rows at a time (a 1024-d map at 240x320 is 315 MB)
        full = upsample(grid, "bicubic", size)
        cols = torch.arange(size[1]).repeat(16)
        _EXACT[key] = all(
            torch.equal(gather_upsampled(grid, rows, cols[:len(rows)], size), full[:, rows, cols[:len(rows)]].T)
            for a in range(0, size[0], 16)
            for rows in [torch.arange(a, min(a + 16, size[0])).repeat_interleave(size[1])])
    return _EXACT[key]


def upsampled_at(grid: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, mode: str = "bicubic") -> torch.Tensor:
    """(P, C) features of the upsampled grid at (rows, cols): the gathered bicubic evaluation where it
    is bit-identical to the full upsample here and cheaper (fewer points than half the pixels: the row
    pass costs about one full pass per gathered point), the full upsample otherwise (and for bilinear)."""
    if mode == "bicubic" and len(rows) < HEIGHT * WIDTH // 2 and _exact_ok(grid):
        return gather_upsampled(grid, rows, cols)
    return upsample(grid, mode)[:, rows, cols].T


def lift_scene(points: np.ndarray, views: list[tuple[np.ndarray, np.ndarray, torch.Tensor]], K: np.ndarray,
               params: LiftParams = LiftParams()) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over visible views of the upsampled features: (feat fp32 [N, C], counter [N])."""
    N = len(points)
    C = views[0][2].shape[0] if views else 0
    total = torch.zeros(N, C)
    count = torch.zeros(N)
    for pose, depth, grid in views:
        r, c, m = project(points, pose, K, depth, params.visibility_threshold, params.cut_bound)
        if not m.any():
            continue  # Lexicon3D skips a view that sees no point
        idx = torch.from_numpy(np.flatnonzero(m))
        total[idx] += upsampled_at(grid, torch.from_numpy(r[m]), torch.from_numpy(c[m]), params.upsample)
        count[idx] += 1
    return total / count.clamp_min(1e-5)[:, None], count


class ViewImages(torch.utils.data.Dataset):
    """The exported colour views, prepared like Lexicon3D's fusion scripts: resized (bilinear) to the
    nearest multiple of the patch size (DINOv2 /14: 238x322), ToTensor, normalised."""

    def __init__(self, views: list[ScanView], patch: int, mean, std):
        self.views = views
        self.size = (max(1, round(HEIGHT / patch)) * patch, max(1, round(WIDTH / patch)) * patch)
        self.mean, self.std = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, i: int):
        from bench.data.images import open_rgb

        img = open_rgb(self.views[i].color)
        if img.size != (WIDTH, HEIGHT):
            raise DataError(self.views[i].color, f"colour view is {img.size[0]}x{img.size[1]}, expected {WIDTH}x{HEIGHT}")
        x = torch.from_numpy(np.asarray(img.resize(self.size[::-1], 2), np.float32) / 255.0).permute(2, 0, 1)
        return (x - self.mean) / self.std, i

    def identity(self, root: Path) -> dict:
        return files_identity([v.color for v in self.views], root)

    def describe(self) -> str:
        return f"lexicon3d-views:resize{self.size[0]}x{self.size[1]}-bilinear,mean{self.mean.flatten().tolist()}"


@dataclass
class LiftStats:
    lifted: int = 0
    reused: int = 0
    points: int = 0
    seconds: float = 0.0


class SceneLifter:
    """Per-view features for a set of scenes through the feature cache, lifted per scene on demand
    and cached (fp16) by encoder identity; `get(scene, subset)` is what every head reads."""

    def __init__(self, ctx, root: Path, K: np.ndarray, views: dict[str, list[ScanView]], params: LiftParams):
        from bench.features import FeatureSpec

        self.ctx, self.root, self.K, self.views, self.params = ctx, Path(root), K, views, params
        pp = ctx.encoder.preprocess
        mean, std = (CLIP_MEAN, CLIP_STD) if params.normalisation == "clip" else (pp.mean, pp.std)
        self.order = [(s, i) for s in sorted(views) for i in range(len(views[s]))]
        self.dataset = ViewImages([views[s][i] for s, i in self.order], pp.patch_size, mean, std)
        self.row = {k: n for n, k in enumerate(self.order)}
        self.spec = FeatureSpec(("patches",), max(1, -params.block))
        ident = self.dataset.identity(root)
        self.store = ctx.features(self.dataset, ident, self.dataset.describe(), self.spec, "scannet-views")
        digest, _ = ctx.cache.key(ctx.encoder, ident, self.dataset.describe(), self.spec, ctx.cache.dtype)
        self.base_key = {"views": digest, "lift": asdict(params), "format": 1}
        self.folder = Path(ctx.cache.root).parent / "lifted3d" / ctx.encoder.name.replace("/", "_")
        self.stats = LiftStats()

    def _key(self, scene: str, points_file: Path, subset: tuple[int, int] | None) -> str:
        key = {**self.base_key, "scene": scene, "points": files_identity([points_file], self.root),
               "subset": list(subset) if subset else None}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]

    def get(self, scene: str, points: np.ndarray, points_file: Path,
            subset: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(feat fp16 [N, C], seen bool [N]) of `scene`, from views [a, b) when `subset` is given."""
        from safetensors.torch import load_file, save_file

        from bench.io import atomic_path

        path = self.folder / self._key(scene, points_file, subset) / f"{scene}.safetensors"
        if path.exists():
            try:
                d = load_file(str(path))
                if d["feat"].shape[0] == len(points):
                    self.stats.reused += 1
                    return d["feat"], d["mask"]
            except Exception:  # noqa: BLE001 - a damaged entry is re-lifted
                pass
        t0 = time.perf_counter()
        vs = self.views[scene]
        a, b = subset or (0, len(vs))
        if b > len(vs) or a >= b:
            raise DataError(self.root / "scannet_2d" / scene, f"views [{a}, {b}) requested but the scene has {len(vs)}")
        rows = [self.row[(scene, i)] for i in range(a, b)]
        grids = self.store.rows("patches", rows)[:, self.params.block]  # (V, h, w, C)
        triples = [(read_pose(vs[i].pose), read_depth(vs[i].depth), grids[j].permute(2, 0, 1))
                   for j, i in enumerate(range(a, b))]
        feat, count = lift_scene(points, triples, self.K, self.params)
        out = {"feat": feat.half().contiguous(), "mask": (count > 0).contiguous()}
        if not torch.isfinite(out["feat"]).all():
            raise DataError(path, "lifted features are not finite in fp16 (encoder features beyond fp16 range?)")
        with atomic_path(path) as tmp:
            save_file(out, str(tmp))
        self.stats.lifted += 1
        self.stats.points += len(points)
        self.stats.seconds += time.perf_counter() - t0
        return out["feat"], out["mask"]


__all__ = ["CLIP_MEAN", "CLIP_STD", "LiftParams", "LiftStats", "SceneLifter", "ViewImages", "gather_upsampled",
           "lift_scene", "project", "upsample", "upsampled_at"]
