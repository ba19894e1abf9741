"""What a rendered view becomes in each layout: per-object visibility statistics, class-crop boxes,
scene JSON, retrieval ground truth (easy / hard / junk by visibility), and pruning of rare classes.
Pure functions of the rendered views, split from `pipeline` (which owns rendering and the output folder)."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np

from . import catalog
from .presets import Preset
from .writers import Sink

# retrieval labels of a database view w.r.t. the query's object instance
EASY_VIS, EASY_MIN_PX, EASY_LARGE_FRAC = 0.5, 1500, 0.08
HARD_VIS, HARD_MIN_PX = 0.15, 400
QUERY_VIS, QUERY_MIN_PX, QUERY_MIN_SIDE = 0.7, 3000, 40


def _is_val(p: Preset, scene_idx: int) -> bool:
    return scene_idx % p.val_every == p.val_every - 1


def _r(x, nd: int = 6):
    """Round floats (recursively) for JSON."""
    if isinstance(x, (list, tuple)):
        return [_r(v, nd) for v in x]
    if isinstance(x, np.ndarray):
        return _r(x.tolist(), nd)
    if isinstance(x, (float, np.floating)):
        return round(float(x), nd)
    if isinstance(x, np.integer):
        return int(x)
    return x


# --------------------------------------------------------------------------------------------------
# per-view statistics


def _truncation(obj: catalog.ObjectSpec, w2c: np.ndarray, K: np.ndarray, W: int, H: int) -> float:
    """Fraction of the object's projected 3D-box rectangle that lies inside the image."""
    c = obj.box_corners() @ w2c[:3, :3].T + w2c[:3, 3]
    if np.any(c[:, 2] <= 0.05):
        return 0.3 if np.any(c[:, 2] > 0.05) else 0.0  # partly behind the camera
    uv = (c @ K.T)[:, :2] / c[:, 2:3]
    x1, y1 = uv.min(0)
    x2, y2 = uv.max(0)
    full = max((x2 - x1) * (y2 - y1), 1e-9)
    cx1, cy1, cx2, cy2 = max(x1, -0.5), max(y1, -0.5), min(x2, W - 0.5), min(y2, H - 0.5)
    inside = max(cx2 - cx1, 0.0) * max(cy2 - cy1, 0.0)
    return float(min(1.0, inside / full))


def view_stats(view, scene, pose: np.ndarray, K: np.ndarray) -> dict[int, dict]:
    """Per visible instance: pixels, 2D box [x1, y1, x2, y2] (inclusive), occlusion and visibility ratios."""
    H, W = view.instance.shape
    w2c = np.linalg.inv(pose)
    objs = {o.instance_id: o for o in scene.objects}
    inst = view.instance
    ids, counts = np.unique(inst, return_counts=True)
    out = {}
    for iid, n in zip(ids.tolist(), counts.tolist()):
        if iid == 0:
            continue
        mask = inst == iid
        ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        amodal = view.amodal_px.get(iid, float(n))
        occ = float(min(1.0, n / max(amodal, 1.0)))
        trunc = _truncation(objs[iid], w2c, K, W, H)
        out[iid] = {"instance_id": iid, "pixels": int(n),
                    "bbox": [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())],
                    "unoccluded": round(occ, 4), "in_frame": round(trunc, 4), "visibility": round(occ * trunc, 4)}
    return out


def _label(st: dict | None, W: int, H: int) -> str | None:
    if st is None or st["pixels"] == 0:
        return None
    px, vis = st["pixels"], st["visibility"]
    if (vis >= EASY_VIS and px >= EASY_MIN_PX) or px >= EASY_LARGE_FRAC * W * H:
        return "easy"
    if vis >= HARD_VIS and px >= HARD_MIN_PX:
        return "hard"
    return "junk"


def _square_crop_box(bbox, W: int, H: int, margin: float = 0.1) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = bbox
    w, h = x2 - x1 + 1, y2 - y1 + 1
    side = int(math.ceil(max(w, h) * (1 + 2 * margin)))
    side = min(side, W, H)
    cx, cy = (x1 + x2 + 1) / 2, (y1 + y2 + 1) / 2
    left = int(round(cx - side / 2))
    top = int(round(cy - side / 2))
    left = min(max(left, 0), W - side)
    top = min(max(top, 0), H - side)
    return left, top, left + side, top + side


# --------------------------------------------------------------------------------------------------
# main entry


def _scene_json(scene, split, cams, K, W, H, fovy) -> dict:
    r = scene.room
    return {
        "scene_id": scene.scene_id,
        "split": split,
        "units": "metres",
        "world": "z up, floor at z = 0, room centred on the origin",
        "camera_convention": "OpenCV (x right, y down, z forward); poses are camera-to-world",
        "room": {"width_x": _r(r.width), "depth_y": _r(r.depth), "height_z": _r(r.height),
                 "wall_rgb": _r(r.wall_rgb, 3)},
        "floor_plane": scene.floor_plane,
        "image_size": [W, H],
        "intrinsics": _r(K, 6),
        "fovy_deg": round(fovy, 6),
        "depth_scale": 1000,
        "objects": [
            {"instance_id": o.instance_id, "category": o.category, "class_id": o.class_id, "colour": o.colour,
             "colour_rgb": _r(catalog.COLOURS[o.colour], 3), "size": o.size_name,
             "box": {"centre": _r(o.box_centre), "size": _r(o.box_size), "yaw": _r(o.yaw)},
             "n_parts": len(o.geoms)}
            for o in scene.objects
        ],
        "cameras": cams,
    }


def _prune_cls(out: Path, sink: Sink, count: dict[str, dict[str, int]]) -> list[str]:
    """Keep only categories with crops in both train and val, so both ImageFolders share class indices."""
    keep = sorted(c for c in count["train"] if count["val"].get(c, 0) > 0)
    for split in ("train", "val"):
        for cat in list(count[split]):
            if cat not in keep:
                shutil.rmtree(out / "cls" / split / cat)
                prefix = f"cls/{split}/{cat}/"
                for rel in [k for k in sink.hashes if k.startswith(prefix)]:
                    del sink.hashes[rel]
                del count[split][cat]
    return keep


def _retrieval(p: Preset, seed: int, views: list[dict], W: int, H: int) -> tuple[dict, int]:
    """Pick query (view, instance) pairs per scene; database = all other views; labels by visibility."""
    rng = np.random.default_rng([seed, 10**6])
    by_scene: dict[int, list[int]] = {}
    for k, v in enumerate(views):
        by_scene.setdefault(v["scene"], []).append(k)
    queries: list[tuple[int, int]] = []  # (view index, instance id)
    qviews: set[int] = set()
    for si in sorted(by_scene):
        ks = by_scene[si]
        chosen = 0
        for k in [ks[i] for i in rng.permutation(len(ks))]:
            if chosen >= p.query_views_per_scene:
                break
            cands = []
            for iid, st in sorted(views[k]["stats"].items()):
                x1, y1, x2, y2 = st["bbox"]
                if st["visibility"] < QUERY_VIS or st["pixels"] < QUERY_MIN_PX or min(x2 - x1, y2 - y1) + 1 < QUERY_MIN_SIDE:
                    continue
                others = [j for j in ks if j != k and j not in qviews]
                if any(_label(views[j]["stats"].get(iid), W, H) in ("easy", "hard") for j in others):
                    cands.append(iid)
            if not cands:
                continue
            # taking view k out of the database must leave every earlier query of this scene a positive
            rest = [j for j in ks if j != k and j not in qviews]
            if not all(any(_label(views[j]["stats"].get(qi), W, H) in ("easy", "hard") for j in rest)
                       for qk, qi in queries if views[qk]["scene"] == si):
                continue
            iid = cands[int(rng.integers(len(cands)))]
            queries.append((k, iid))
            qviews.add(k)
            chosen += 1
    db = [k for k in range(len(views)) if k not in qviews]
    pos = {k: i for i, k in enumerate(db)}
    gnd = []
    for k, iid in queries:
        g = {"easy": [], "hard": [], "junk": []}
        for j in by_scene[views[k]["scene"]]:
            if j in pos:
                lab = _label(views[j]["stats"].get(iid), W, H)
                if lab:
                    g[lab].append(pos[j])
        x1, y1, x2, y2 = views[k]["stats"][iid]["bbox"]
        g["bbx"] = [float(x1), float(y1), float(x2 + 1), float(y2 + 1)]
        gnd.append(g)
    return {"imlist": [views[k]["name"] for k in db], "qimlist": [views[k]["name"] for k, _ in queries], "gnd": gnd}, len(db)
