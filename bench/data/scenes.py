"""Posed RGB-D scenes: the per-view record (`View`), its readers, and per-view geometry.

Shared by the SpatialBoost recipe (`bench.spatialboost.data`) and 3D-scene probes: `load_scene` /
`load_synth_view` / `read_matrix` read the ScanNet-style layout the synthetic scenes are written in
(`bench.data.synth`: ``scene.json``, colour / depth PNGs, 4x4 pose text files); back-projection,
floor-plane fit, the canonical gravity-aligned frame and the 3D bounding cubes of objects follow
the SpatialBoost paper (§3.2; SpatialVLM's canonicalisation).

Camera frame: OpenCV (x right, y down, z forward), metres. Depth maps hold planar z-depth (0 = invalid).

Canonical frame (what cube centres are written in): origin on the floor directly below the camera,
y = the fitted floor normal (up), z = the camera's viewing direction projected onto the floor plane
(forward), x = z × y (to the viewer's right). x right / y up / z forward is a left-handed triple,
chosen so every coordinate reads naturally ("y" is the height above the floor, "z" the horizontal
distance ahead of the viewer, negative x is on the viewer's left).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FLOOR_CLASS = "floor"


@dataclass(frozen=True)
class ObjectInfo:
    instance_id: int
    category: str
    colour: str | None = None

    @property
    def name(self) -> str:
        return f"{self.colour} {self.category}" if self.colour else self.category


@dataclass
class View:
    """One posed RGB-D view with instance masks: everything the generators need, from any source."""

    key: str  # "<scene>/<view>", unique in a dataset
    depth: np.ndarray  # (H, W) float32 metres, 0 = invalid
    instance: np.ndarray  # (H, W) int32, 0 = no object
    K: np.ndarray  # (3, 3) intrinsics
    objects: dict[int, ObjectInfo]
    cam_to_world: np.ndarray | None = None  # (4, 4) OpenCV camera-to-world, world z up
    floor_mask: np.ndarray | None = None  # (H, W) bool: pixels on the floor (for the plane fit)
    image_path: Path | None = None
    scene: str = ""
    index: int = 0
    wall_colour: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def hw(self) -> tuple[int, int]:
        return self.depth.shape[0], self.depth.shape[1]

    def known_floor(self) -> tuple[np.ndarray, float] | None:
        """The true floor plane (n, d) in camera coordinates when the pose is known (world floor z = 0)."""
        if self.cam_to_world is None:
            return None
        R, t = self.cam_to_world[:3, :3], self.cam_to_world[:3, 3]
        n = R.T @ np.array([0.0, 0.0, 1.0])
        return n, float(t[2])


# --------------------------------------------------------------------------------------------------
# back-projection


def backproject(depth: np.ndarray, K: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points (N, 3) of the valid pixels in ``mask`` and their (N, 2) pixel coords (u, v)."""
    valid = depth > 0
    if mask is not None:
        valid &= mask
    v, u = np.nonzero(valid)
    z = depth[v, u].astype(np.float64)
    x = (u - K[0, 2]) * z / K[0, 0]
    y = (v - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], 1), np.stack([u, v], 1)


def backproject_pixel(u: float, v: float, z: float, K: np.ndarray) -> np.ndarray:
    return np.array([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z])


# --------------------------------------------------------------------------------------------------
# floor plane


@dataclass(frozen=True)
class Plane:
    """n . p + d = 0 with |n| = 1, oriented so the camera (origin) is on the positive side (d > 0)."""

    normal: np.ndarray
    d: float
    inliers: int = 0
    rms: float = 0.0

    def angle_to(self, normal: np.ndarray) -> float:
        c = float(np.clip(np.dot(self.normal, normal) / np.linalg.norm(normal), -1, 1))
        return float(np.degrees(np.arccos(c)))


def _orient(n: np.ndarray, d: float) -> tuple[np.ndarray, float]:
    s = np.linalg.norm(n)
    n, d = n / s, d / s
    if d < 0:  # camera must be above the floor
        n, d = -n, -d
    return n, d


def _lsq_plane(pts: np.ndarray) -> tuple[np.ndarray, float, float]:
    c = pts.mean(0)
    _, s, vt = np.linalg.svd(pts - c, full_matrices=False)
    n = vt[2]
    return n, float(-n @ c), float(s[2] / np.sqrt(len(pts)))


def fit_floor(points: np.ndarray, rng: np.random.Generator | None = None, thresh: float = 0.02,
              iters: int = 100, up_hint=(0.0, -1.0, 0.0), max_angle_deg: float = 45.0,
              ransac_points: int = 2000, refine_points: int = 20000) -> Plane:
    """RANSAC plane fit (normals within ``max_angle_deg`` of ``up_hint``; hypotheses scored on a
    subsample of ``ransac_points``), refined by least squares on the inliers among up to
    ``refine_points`` points. ``points`` are floor candidates in camera coordinates."""
    if len(points) < 3:
        raise ValueError("need at least 3 floor points to fit a plane")
    rng = rng if rng is not None else np.random.default_rng(0)
    sub = lambda p, n: p if len(p) <= n else p[np.sort(rng.choice(len(p), n, replace=False))]  # noqa: E731
    all_pts = sub(points, refine_points)
    pts = sub(all_pts, ransac_points)
    up = np.asarray(up_hint, float)
    up = up / np.linalg.norm(up)
    cos_max = np.cos(np.radians(max_angle_deg))
    px, py, pz = (np.ascontiguousarray(pts[:, k]) for k in range(3))
    best, best_count = None, -1
    for _ in range(iters):
        a, b, c = pts[rng.choice(len(pts), 3, replace=False)]
        e1, e2 = b - a, c - a
        n = np.array([e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2], e1[0] * e2[1] - e1[1] * e2[0]])
        norm = math.sqrt(n @ n)
        if norm < 1e-9:
            continue
        n = n / norm
        if abs(n @ up) < cos_max:
            continue
        count = int((np.abs(px * n[0] + py * n[1] + pz * n[2] - n @ a) < thresh).sum())
        if count > best_count:
            best, best_count = (n, -float(n @ a)), count
    if best is None:
        raise ValueError(f"no plane within {max_angle_deg} degrees of the up direction among the floor points")
    n, d = best
    pts = all_pts
    for _ in range(2):  # refine: least squares on the inliers, re-select inliers
        inl = pts[np.abs(pts @ n + d) < thresh]
        if len(inl) < 3:
            break
        n, d, _ = _lsq_plane(inl)
    n, d = _orient(n, d)
    if n @ up < cos_max:  # facing away from the camera (a ceiling) or tilted off by the refinement
        raise ValueError("fitted plane is not a floor below the camera")
    res = np.abs(pts @ n + d)
    inl_count = int((res < thresh).sum())
    rms = float(np.sqrt(np.mean(res[res < thresh] ** 2))) if inl_count else 0.0
    return Plane(n, float(d), inl_count, float(rms))


def floor_candidates(view: View) -> np.ndarray:
    """Floor points: the floor mask when the source has one (raises ValueError when it shows almost no
    floor), else non-object pixels in the bottom third (model-based sources)."""
    if view.floor_mask is not None:
        pts, _ = backproject(view.depth, view.K, view.floor_mask)
        if len(pts) < 50:
            raise ValueError(f"{view.key}: the floor is not visible")
        return pts
    H = view.depth.shape[0]
    m = view.instance == 0
    m[: 2 * H // 3] = False
    pts, _ = backproject(view.depth, view.K, m)
    return pts


# --------------------------------------------------------------------------------------------------
# canonical frame and cubes


@dataclass(frozen=True)
class CanonicalFrame:
    """Gravity-aligned frame: rows of ``axes`` are x (right), y (up = floor normal), z (forward)."""

    origin: np.ndarray  # camera-frame coordinates of the origin (floor point below the camera)
    axes: np.ndarray  # (3, 3)

    @classmethod
    def from_floor(cls, plane: Plane) -> "CanonicalFrame":
        y = plane.normal / np.linalg.norm(plane.normal)
        f = np.array([0.0, 0.0, 1.0])
        z = f - (f @ y) * y
        if np.linalg.norm(z) < 1e-6:  # looking straight down: use the camera's down axis as forward
            f = np.array([0.0, 1.0, 0.0])
            z = f - (f @ y) * y
        z = z / np.linalg.norm(z)
        x = np.cross(z, y)
        origin = -plane.d * y  # foot of the camera centre on the plane
        return cls(origin, np.stack([x, y, z]))

    def to_canonical(self, pts_cam: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(pts_cam) - self.origin
        A = self.axes  # explicit 3x3 product: no BLAS threads for an (N, 3) x (3, 3) product
        return np.stack([p[:, 0] * A[k, 0] + p[:, 1] * A[k, 1] + p[:, 2] * A[k, 2] for k in range(3)], 1)

    @property
    def camera_height(self) -> float:
        return float(-self.origin @ self.axes[1])


@dataclass(frozen=True)
class Cube:
    """Axis-aligned box in the canonical frame around an object's 3D points."""

    instance_id: int
    lo: np.ndarray
    hi: np.ndarray
    n_points: int
    median_depth: float  # camera z of the object's pixels (for "closest" questions)
    centroid_px: tuple[float, float]  # mean (u, v) of its pixels

    @property
    def centre(self) -> np.ndarray:
        return (self.lo + self.hi) / 2

    @property
    def size(self) -> np.ndarray:
        return self.hi - self.lo


def instance_pixels(view: View) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Instance id -> (v, u) of its pixels with valid depth; computed once per view (bounding-box
    slices, so the cost is proportional to the objects' areas)."""
    cached = view.extra.get("instance_pixels")
    if cached is not None:
        return cached
    from scipy import ndimage

    inst = view.instance
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if inst.max() > 0:
        for k, sl in enumerate(ndimage.find_objects(inst), start=1):
            if sl is None:
                continue
            m = (inst[sl] == k) & (view.depth[sl] > 0)
            v, u = np.nonzero(m)
            if len(v):
                out[k] = (v + sl[0].start, u + sl[1].start)
    view.extra["instance_pixels"] = out
    return out


def object_cubes(view: View, frame: CanonicalFrame, min_pixels: int = 1, trim: float = 0.0) -> dict[int, Cube]:
    """One cube per object with at least ``min_pixels`` valid pixels. ``trim`` (fraction, per side)
    drops outlying points before taking min/max: 0 for exact ground truth, ~0.02 for model depth."""
    out: dict[int, Cube] = {}
    K = view.K
    for iid, (v, u) in instance_pixels(view).items():
        n = len(v)
        if n < min_pixels:
            continue
        z = view.depth[v, u].astype(np.float64)
        pts = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], 1)
        c = frame.to_canonical(pts)
        if trim > 0 and n >= 20:
            lo, hi = np.quantile(c, trim, axis=0), np.quantile(c, 1 - trim, axis=0)
        else:
            lo, hi = c.min(0), c.max(0)
        out[iid] = Cube(iid, lo, hi, n, float(np.median(z)), (float(u.mean()), float(v.mean())))
    return out


@dataclass
class ViewGeometry:
    """Everything derived once per view: the floor plane, the canonical frame, object cubes."""

    view: View
    plane: Plane
    frame: CanonicalFrame
    cubes: dict[int, Cube]
    floor_error: dict | None = None  # angle (deg) and height (m) error against the known floor
    cache: dict = field(default_factory=dict, repr=False)  # per-view derived arrays (e.g. good points)

    @classmethod
    def compute(cls, view: View, rng: np.random.Generator | None = None, min_pixels: int = 1,
                trim: float = 0.0) -> "ViewGeometry":
        plane = fit_floor(floor_candidates(view), rng)
        frame = CanonicalFrame.from_floor(plane)
        err = None
        known = view.known_floor()
        if known is not None:
            n, d = known
            err = {"angle_deg": plane.angle_to(n), "height_m": abs(plane.d - d)}
        return cls(view, plane, frame, object_cubes(view, frame, min_pixels, trim), err)


# --------------------------------------------------------------------------------------------------
# the synthetic ScanNet-style layout (bench.data.synth: scenes/<scene>/...)


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    from bench.data.images import unreadable

    try:
        with Image.open(path) as im:
            return np.array(im)
    except Exception as exc:  # truncated / corrupt / missing: one line naming the file
        raise unreadable(path, exc) from None


def read_matrix(path: Path) -> np.ndarray:
    return np.array([[float(x) for x in line.split()] for line in Path(path).read_text().splitlines() if line.strip()])


def nearest_colour_name(rgb) -> str:
    from bench.data.synth.catalog import COLOURS

    rgb = np.asarray(rgb, float)
    return min(COLOURS, key=lambda k: float(np.sum((np.asarray(COLOURS[k]) - rgb) ** 2)))


def load_scene(scene_dir: Path) -> dict:
    return json.loads((Path(scene_dir) / "scene.json").read_text())


def load_synth_view(scene_dir: Path, cam: dict, meta: dict) -> View:
    """A :class:`View` from the ground truth of one camera of a synthetic scene (``scene.json`` entry)."""
    from bench.data.synth.catalog import CLASS_NAMES

    scene_dir = Path(scene_dir)
    scale = float(meta.get("depth_scale", 1000))
    depth = _read_png(scene_dir / cam["depth"]).astype(np.float32) / scale
    instance = _read_png(scene_dir / cam["instance"]).astype(np.int32)
    label = _read_png(scene_dir / cam["label"])
    K = read_matrix(scene_dir / "intrinsic" / "intrinsic_color.txt")[:3, :3]
    pose = np.asarray(cam.get("camera_to_world") or read_matrix(scene_dir / cam["pose"]), float)
    objects = {int(o["instance_id"]): ObjectInfo(int(o["instance_id"]), o["category"], o.get("colour"))
               for o in meta["objects"]}
    wall = meta.get("room", {}).get("wall_rgb")
    return View(
        key=f"{meta['scene_id']}/{cam['index']}", depth=depth, instance=instance, K=K, objects=objects,
        cam_to_world=pose, floor_mask=label == CLASS_NAMES.index(FLOOR_CLASS),
        image_path=scene_dir / cam["color"], scene=meta["scene_id"], index=int(cam["index"]),
        wall_colour=nearest_colour_name(wall) if wall is not None else None,
    )
