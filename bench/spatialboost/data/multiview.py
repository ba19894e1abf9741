"""Multi-view VQA for stage 2 (paper §3.2 / App. C): sets of 2, 4 and 8 views of one scene whose
pairwise image distance lies in a band, and questions that need several views (which view shows an
object closest, object counts across views, visibility, relative camera motion).

The view distance is pluggable. The paper keeps pairs with 0.35 <= LPIPS <= 0.65; LPIPS needs
pretrained AlexNet weights, so :class:`LpipsDistance` is used only when the ``lpips`` package and the
weights are already on the machine. The offline default :class:`CovisibilityDistance` is 1 - the
mutual co-visibility of two views (from depth + poses) with band 0.35..0.85; image-only distances
(1 - SSIM, pixel, gradient) barely track view overlap on the synthetic scenes, see
docs/spatialboost_data.md. :class:`SsimDistance` stays available for data without geometry. The
manifest records which distance and band ran.

A scene with fewer real views than a set needs (the tiny preset has 5 per scene) is topped up with
*virtual views*: crops of real views resized to full size, i.e. the same camera pose with a longer
focal length and a shifted principal point. Their geometry is exact; the manifest counts them.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from bench.data.scenes import View, instance_pixels

from .captions import join_list, number_word, plural
from .templates import MULTIVIEW, fill, fmt_length

UP = np.array([0.0, 0.0, 1.0])  # world up of the ScanNet-style scenes (floor z = 0)


# --------------------------------------------------------------------------------------------------
# view distances


class ViewDistance(Protocol):
    """A distance between two views of a pool; pairs in ``band`` (inclusive) are kept."""

    name: str
    band: tuple[float, float]

    def features(self, mv: "MVView"): ...

    def distance(self, fa, fb) -> float: ...

    def describe(self) -> dict: ...


def _grey_small(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(np.asarray(rgb, np.uint8)).convert("L").resize(size, Image.BILINEAR)
    return np.asarray(im, np.float64) / 255.0


@dataclass(frozen=True)
class CovisibilityDistance:
    """1 - mutual co-visibility: the mean, over both directions, of the fraction of one view's pixels
    that the other view sees at a consistent depth. Needs depth and poses (ground truth or a
    :class:`~.annotators.Reconstructor`). Offline default: it measures what the paper's LPIPS band
    is for (overlapping but not near-duplicate views) and, unlike SSIM or pixel distances, tracks
    view overlap on the synthetic scenes (see docs/spatialboost_data.md, "Distance band")."""

    band: tuple[float, float] = (0.35, 0.85)  # co-visibility 0.15 .. 0.65
    step: int = 8
    name: str = "1-covisibility"

    def features(self, mv: "MVView"):
        return mv.view

    def distance(self, a: View, b: View) -> float:
        return 1.0 - 0.5 * (covisibility(a, b, self.step) + covisibility(b, a, self.step))

    def describe(self) -> dict:
        return {"name": self.name, "band": list(self.band), "step": self.step,
                "calibration": "co-visibility 0.15-0.65 (keeps ~47% of synthetic view pairs; "
                               "the lower bound drops near duplicates, the upper bound unrelated views)"}


@dataclass(frozen=True)
class SsimDistance:
    """1 - SSIM (Gaussian window) of grey images downsampled to ``size``: image-only fallback for
    data without geometry. Weakly related to view overlap on the synthetic scenes (Spearman +0.11
    against co-visibility), so it is not the default there; band = its 25th-90th percentile."""

    band: tuple[float, float] = (0.52, 0.74)
    size: tuple[int, int] = (80, 60)
    sigma: float = 1.5
    name: str = "1-ssim-grey80x60"

    def features(self, mv: "MVView") -> np.ndarray:
        return _grey_small(mv.rgb, self.size)

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        from scipy.ndimage import gaussian_filter

        c1, c2 = 0.01 ** 2, 0.03 ** 2
        g = lambda x: gaussian_filter(x, self.sigma, mode="reflect")  # noqa: E731
        mu_a, mu_b = g(a), g(b)
        saa, sbb, sab = g(a * a) - mu_a ** 2, g(b * b) - mu_b ** 2, g(a * b) - mu_a * mu_b
        ssim = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
        return float(1.0 - ssim.mean())

    def describe(self) -> dict:
        return {"name": self.name, "band": list(self.band), "size": list(self.size), "sigma": self.sigma,
                "calibration": "25th-90th percentile of synthetic view pairs"}


def _alexnet_weights() -> Path | None:
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    hits = sorted(hub.glob("alexnet-owt-*.pth")) if hub.is_dir() else []
    return hits[0] if hits else None


class LpipsDistance:
    """LPIPS (AlexNet) with the paper's band; only constructible when package and weights are local."""

    band = (0.35, 0.65)
    name = "lpips-alex"

    @staticmethod
    def available() -> tuple[bool, str]:
        try:
            import lpips  # noqa: F401
        except ImportError:
            return False, "the lpips package is not installed"
        if _alexnet_weights() is None:
            return False, "AlexNet weights are not in the torch hub cache (no download here)"
        return True, "lpips + AlexNet weights found"

    def __init__(self, device: str = "cpu"):
        ok, why = self.available()
        if not ok:
            raise RuntimeError(f"LPIPS unavailable: {why}")
        import lpips

        self.model = lpips.LPIPS(net="alex", verbose=False).eval().to(device)
        self.device = device

    def features(self, mv: "MVView"):
        import torch
        from PIL import Image

        im = np.asarray(Image.fromarray(np.asarray(mv.rgb, np.uint8)).resize((256, 192), Image.BILINEAR), np.float32)
        return torch.from_numpy(im / 127.5 - 1.0).permute(2, 0, 1)[None].to(self.device)

    def distance(self, a, b) -> float:
        import torch

        with torch.no_grad():
            return float(self.model(a, b).item())

    def describe(self) -> dict:
        return {"name": self.name, "band": list(self.band), "calibration": "paper (App. C)"}


DISTANCES = ("auto", "lpips", "covisibility", "ssim")


def make_distance(kind: str = "auto") -> ViewDistance:
    """``auto``: LPIPS (the paper's) when package and weights are local, else co-visibility."""
    if kind not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {kind!r}")
    if kind == "ssim":
        return SsimDistance()
    if kind == "covisibility":
        return CovisibilityDistance()
    ok, why = LpipsDistance.available()
    if kind == "lpips" and not ok:
        raise RuntimeError(f"LPIPS requested but unavailable: {why}")
    return LpipsDistance() if ok else CovisibilityDistance()


# --------------------------------------------------------------------------------------------------
# views with images


class MVView:
    """A view in a multi-view pool: geometry + its image (a real file, loaded lazily, or a virtual crop)."""

    def __init__(self, view: View, rgb: np.ndarray | None = None, virtual: bool = False, parent: str = ""):
        self.view, self._rgb, self.virtual, self.parent = view, rgb, virtual, parent
        self.stats: dict[int, tuple[int, float]] | None = None

    @property
    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            from PIL import Image

            with Image.open(self.view.image_path) as im:
                self._rgb = np.asarray(im.convert("RGB"))
        return self._rgb

    def object_stats(self) -> dict[int, tuple[int, float]]:
        """Instance id -> (valid pixels, median depth)."""
        if self.stats is None:
            d = self.view.depth
            self.stats = {iid: (len(v), float(np.median(d[v, u]))) for iid, (v, u) in instance_pixels(self.view).items()}
        return self.stats


def crop_view(mv: MVView, box: tuple[int, int, int, int], tag: str) -> MVView:
    """A virtual view: crop (x0, y0, w, h) of ``mv`` resized back to full size (same pose)."""
    from PIL import Image

    v = mv.view
    H, W = v.hw
    x0, y0, w, h = box
    sx, sy = W / w, H / h
    rgb = np.asarray(Image.fromarray(mv.rgb[y0:y0 + h, x0:x0 + w]).resize((W, H), Image.BILINEAR))
    ys = np.clip(((np.arange(H) + 0.5) / sy - 0.5).round().astype(int), 0, h - 1) + y0
    xs = np.clip(((np.arange(W) + 0.5) / sx - 0.5).round().astype(int), 0, w - 1) + x0
    K = v.K.copy()
    K[0, 0], K[1, 1] = K[0, 0] * sx, K[1, 1] * sy
    K[0, 2], K[1, 2] = (K[0, 2] + 0.5 - x0) * sx - 0.5, (K[1, 2] + 0.5 - y0) * sy - 0.5
    nv = replace(v, key=f"{v.key}@{tag}", depth=v.depth[np.ix_(ys, xs)], instance=v.instance[np.ix_(ys, xs)], K=K,
                 floor_mask=None if v.floor_mask is None else v.floor_mask[np.ix_(ys, xs)], image_path=None, extra={})
    return MVView(nv, rgb, virtual=True, parent=v.key)


CROP_SCALE = 0.5  # a half-size crop shares 25% of its parent's pixels: inside the co-visibility band
CROP_ANCHORS = ((0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, 1.0), (0.5, 0.5))


def virtual_views(real: list[MVView], needed: int) -> list[MVView]:
    """Up to ``needed`` crops of the real views (quadrants, then the centre), round-robin over views."""
    out: list[MVView] = []
    for a, (ax, ay) in enumerate(CROP_ANCHORS):
        for mv in real:
            if len(out) >= needed:
                return out
            H, W = mv.view.hw
            w, h = int(round(W * CROP_SCALE)), int(round(H * CROP_SCALE))
            out.append(crop_view(mv, (int(round(ax * (W - w))), int(round(ay * (H - h))), w, h), f"crop{a}"))
    return out


# --------------------------------------------------------------------------------------------------
# view-set selection


def distance_matrix(pool: list[MVView], dist: ViewDistance) -> np.ndarray:
    feats = [dist.features(mv) for mv in pool]
    n = len(pool)
    D = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            D[i, j] = D[j, i] = dist.distance(feats[i], feats[j])
    return D


def select_sets(D: np.ndarray, n_views: int, count: int, band: tuple[float, float], rng: np.random.Generator,
                tries: int = 200) -> list[tuple[int, ...]]:
    """Up to ``count`` distinct ordered view sets of size ``n_views``: every added view has at least one
    in-band partner among the views already chosen and none closer than the band's lower end."""
    lo, hi = band
    n = len(D)
    if n < n_views:
        return []
    found: list[tuple[int, ...]] = []
    seen: set[frozenset] = set()
    for _ in range(tries):
        if len(found) >= count:
            break
        chosen = [int(rng.integers(n))]
        while len(chosen) < n_views:
            cand = [k for k in range(n) if k not in chosen and all(D[k, c] >= lo for c in chosen)
                    and any(D[k, c] <= hi for c in chosen)]
            if not cand:
                break
            chosen.append(cand[int(rng.integers(len(cand)))])
        key = frozenset(chosen)
        if len(chosen) == n_views and key not in seen:
            seen.add(key)
            found.append(tuple(chosen))
    return found


# --------------------------------------------------------------------------------------------------
# questions


def camera_motion(pose_a: np.ndarray, pose_b: np.ndarray) -> dict:
    """Motion of camera b relative to camera a, in a's gravity-aligned frame (world z up)."""
    fa = pose_a[:3, 2] - (pose_a[:3, 2] @ UP) * UP
    fa /= np.linalg.norm(fa)
    ra = np.cross(fa, UP)  # right of a
    delta = pose_b[:3, 3] - pose_a[:3, 3]
    fb = pose_b[:3, 2] - (pose_b[:3, 2] @ UP) * UP
    fb /= np.linalg.norm(fb)
    yaw = math.degrees(math.atan2(float(fb @ ra), float(fb @ fa)))  # > 0: turned right
    return {"right": float(delta @ ra), "forward": float(delta @ fa), "up": float(delta @ UP), "yaw_deg": yaw}


def describe_motion(m: dict, min_move: float = 0.05, min_turn: float = 5.0) -> str:
    parts = []
    for key, pos, neg in (("right", "to the right", "to the left"), ("forward", "forward", "backward"), ("up", "up", "down")):
        v = m[key]
        if abs(v) >= min_move:
            parts.append(f"{fmt_length(abs(v))} {pos if v > 0 else neg}")
    move = f"The camera moved {join_list(parts)}" if parts else "The camera stayed in about the same place"
    yaw = m["yaw_deg"]
    if abs(yaw) >= min_turn:
        return f"{move}, and turned {abs(round(yaw)):d} degrees to the {'right' if yaw > 0 else 'left'}."
    return f"{move} without turning."


def _views_phrase(idx: list[int], total: int) -> str:
    if len(idx) == total:
        return f"all {number_word(total)} views"
    if len(idx) == 1:
        return f"only view {idx[0]}"
    return "views " + join_list([str(i) for i in idx])


@dataclass(frozen=True)
class MVConfig:
    min_object_frac: float = 0.002
    closest_margin: float = 0.2  # metres between the closest and the next view
    min_motion: float = 0.2  # metres or ...
    min_motion_deg: float = 10.0  # ... degrees for a motion question
    max_questions: int = 3


def multiview_qa(views: list[MVView], names: dict[int, str], categories: dict[int, str], rng: np.random.Generator,
                 cfg: MVConfig = MVConfig()) -> list[tuple[str, str]]:
    """Questions about an ordered view set (views are numbered from 1). ``names``: instance id ->
    unique scene-level name (ambiguous names are left out), ``categories``: instance id -> category."""
    n = len(views)
    H, W = views[0].view.hw
    min_px = max(1, int(round(cfg.min_object_frac * H * W)))
    seen: dict[int, list[tuple[int, float]]] = {}  # iid -> [(view number, median depth)]
    for k, mv in enumerate(views, 1):
        for iid, (px, med) in mv.object_stats().items():
            if px >= min_px:
                seen.setdefault(iid, []).append((k, med))
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    q = lambda kind, **s: fill(pick(MULTIVIEW[kind]), **s)  # noqa: E731
    cands: dict[str, tuple[str, str]] = {}
    named = [i for i in sorted(seen) if i in names]
    if named:
        iid = pick(named)
        idx = [k for k, _ in seen[iid]]
        cands["visible_in"] = (q("visible_in", A=names[iid]), f"The {names[iid]} is visible in {_views_phrase(idx, n)}.")
    multi = []
    for iid in named:
        ds = sorted(seen[iid], key=lambda kd: kd[1])
        if len(ds) >= 2 and ds[1][1] - ds[0][1] >= cfg.closest_margin:
            multi.append((iid, ds))
    if multi:
        iid, ds = pick(multi)
        (kb, db), (k2, d2) = ds[0], ds[1]
        cands["closest_view"] = (q("closest_view", A=names[iid]),
                                 f"View {kb}. The {names[iid]} is {fmt_length(db)} from the camera there, "
                                 f"and {fmt_length(d2)} in view {k2}, the next closest.")
    cats = sorted({categories[i] for i in seen if i in categories})
    if cats:
        cat = pick(cats)
        c = sum(1 for i in seen if categories.get(i) == cat)
        noun = cat if c == 1 else plural(cat)
        cands["count"] = (q("count", A=plural(cat)),
                          f"There {'is' if c == 1 else 'are'} {number_word(c)} {noun} across the views.")
    if seen and "count" not in cands:
        cands["n_objects"] = (q("n_objects"), f"{number_word(len(seen)).capitalize()} different objects can be seen.")
    motions = []
    for k in range(2, n + 1):
        pa, pb = views[0].view.cam_to_world, views[k - 1].view.cam_to_world
        if pa is None or pb is None:
            continue
        m = camera_motion(pa, pb)
        if math.hypot(m["right"], m["forward"], m["up"]) >= cfg.min_motion or abs(m["yaw_deg"]) >= cfg.min_motion_deg:
            motions.append((k, m))
    if motions:
        k, m = pick(motions)
        cands["motion"] = (q("motion", A="1", B=str(k)), describe_motion(m))
    keys = sorted(cands)
    chosen = [keys[i] for i in rng.permutation(len(keys))[: cfg.max_questions]]
    return [cands[k] for k in chosen]


def multiview_prompt(n: int, image_token: str = "<image>") -> str:
    return "".join(f"View {k}: {image_token}\n" for k in range(1, n + 1))


def covisibility(a: View, b: View, step: int = 8, rel_tol: float = 0.05) -> float:
    """Fraction of a's (subsampled) valid pixels seen by b at a consistent depth (ground truth; used to
    calibrate the image-distance band)."""
    if a.cam_to_world is None or b.cam_to_world is None:
        raise ValueError("covisibility needs poses")
    d = a.depth[::step, ::step]
    v, u = np.nonzero(d > 0)
    v, u = v * step, u * step
    z = a.depth[v, u].astype(np.float64)
    pa = np.stack([(u - a.K[0, 2]) * z / a.K[0, 0], (v - a.K[1, 2]) * z / a.K[1, 1], z], 1)
    pw = pa @ a.cam_to_world[:3, :3].T + a.cam_to_world[:3, 3]
    w2c = np.linalg.inv(b.cam_to_world)
    pb = pw @ w2c[:3, :3].T + w2c[:3, 3]
    front = pb[:, 2] > 0.05
    ub = np.round(pb[:, 0] / np.maximum(pb[:, 2], 1e-6) * b.K[0, 0] + b.K[0, 2]).astype(int)
    vb = np.round(pb[:, 1] / np.maximum(pb[:, 2], 1e-6) * b.K[1, 1] + b.K[1, 2]).astype(int)
    H, W = b.hw
    inside = front & (ub >= 0) & (ub < W) & (vb >= 0) & (vb < H)
    ok = np.zeros(len(z), bool)
    db = b.depth[vb[inside], ub[inside]]
    ok[inside] = (db > 0) & (np.abs(db - pb[inside, 2]) <= rel_tol * pb[inside, 2])
    return float(ok.mean()) if len(z) else 0.0
