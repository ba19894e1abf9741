"""The synthetic twin of ScanNet as Lexicon3D reads it, written in the native layouts
(`bench.data.scannet`, `bench.data.scannet_lang`): posed 320x240 RGB-D views of MuJoCo rooms (the
rooms, objects and cameras of `bench.data.synth.scene`, rendered by `render.Renderer`), a labelled
point cloud (fused depth of every view, one point per voxel: the "mesh vertices"), Lexicon3D's
label_20 files and registration poses, M3DRef-CLIP instance files, ScanQA-style questions and
ScanRefer-style referring expressions from the ground truth.

Output: `$BENCH_HOME/data/synth-<preset>/scannet3d/` (beside the other synthetic layouts, owned by
this writer): generated under an fcntl lock into a temporary folder, marked `.bench-synth`, moved
into place, `manifest.json` written last. Run in its own process (`ensure3d`): GL contexts must not
live in the benchmark's process. Category -> nyu40 -> ScanNet-20 mapping: `NYU40` (docs/3d.md).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

VERSION = "1.0.0"
LAYOUT = "scannet3d"
FOCAL = 288.9353  # ScanNet's adjusted depth focal length at 320x240 (cx, cy = 159.5, 119.5 as MuJoCo's)
# generator class -> nyu40 id (then the standard 20-class map; 0 = unlabelled)
NYU40 = {"other": 0, "wall": 1, "floor": 2, "ceiling": 22, "table": 7, "chair": 5, "sofa": 6, "bed": 4, "cabinet": 3,
         "lamp": 35, "box": 29, "ball": 40, "vase": 40, "bottle": 40, "monitor": 25, "plant": 40, "bookshelf": 10,
         "mug": 40, "stool": 39}
# category draw weights: furniture of the 20 classes often and in several copies (ScanRefer distractors)
WEIGHTS = {"chair": 5, "table": 3, "cabinet": 2, "sofa": 1.5, "bed": 1, "bookshelf": 1.5, "stool": 2, "lamp": 1,
           "box": 1.5, "ball": 1, "vase": 1, "bottle": 1, "monitor": 1, "plant": 1, "mug": 1}


@dataclass(frozen=True)
class Preset3D:
    name: str
    n_scenes: int
    views: int
    voxel: float  # point-cloud voxel (m): one vertex per occupied voxel
    min_objects: int = 7
    max_objects: int = 10
    val_every: int = 3  # scene i is val when i % val_every == val_every - 1
    stride: int = 2  # back-projection pixel stride for the point cloud

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS3D = {
    "tiny": Preset3D("tiny", n_scenes=3, views=12, voxel=0.10, min_objects=6, max_objects=8, stride=3),
    "small": Preset3D("small", n_scenes=9, views=24, voxel=0.07),
    "full": Preset3D("full", n_scenes=60, views=48, voxel=0.05, val_every=5, stride=1),
    # held-out oracle tests (tests/test_scene3d_heldout.py): 20 train / 10 val scenes, coarse and few views
    # (a CPU-test cost); a registration cloud keeps every seen vertex at points=1024
    "heldout": Preset3D("heldout", n_scenes=30, views=8, voxel=0.45, min_objects=6, max_objects=8, stride=4),
}


def get_preset3d(name: str) -> Preset3D:
    if name not in PRESETS3D:
        raise ValueError(f"unknown synthetic preset {name!r} for the 3D scenes; valid: {', '.join(PRESETS3D)}")
    return PRESETS3D[name]


def root3d(preset: str) -> Path:
    from .pipeline import default_root

    return default_root(preset) / LAYOUT


def manifest_ok(out: Path, preset: str, seed: int = 0) -> dict | None:
    from .pipeline import MARKER, _read_json

    m = _read_json(out / "manifest.json")
    marker = _read_json(out / MARKER)
    if not (isinstance(m, dict) and isinstance(marker, dict)):
        return None
    if (m.get("preset"), m.get("seed"), m.get("version")) != (preset, seed, VERSION):
        return None
    return m if marker.get("content_hash") == m.get("content_hash") else None


def ensure3d(preset: str, root: Path | None = None, seed: int = 0, progress: bool = True) -> Path:
    """Generate the 3D twin if missing or stale (in a child process) and return its root."""
    from bench.errors import BenchError

    get_preset3d(preset)
    root = Path(root) if root is not None else root3d(preset)
    if manifest_ok(root, preset, seed) is None:
        _check_ours(root)
        cmd = [sys.executable, "-m", "bench.data.synth.scannet3d", "--preset", preset, "--out", str(root),
               "--seed", str(seed)] + ([] if progress else ["--no-progress"])
        if subprocess.run(cmd).returncode != 0:
            raise BenchError(f"synthetic 3D scene generation failed: {' '.join(cmd)}")
    return root


def _check_ours(out: Path) -> None:
    from bench.errors import DataError

    from .pipeline import MARKER, _is_ours

    if out.exists() and any(out.iterdir()) and not _is_ours(out):
        raise DataError(out, f"exists and was not written by the synthetic generator (no {MARKER} marker); "
                             "refusing to replace it")


def generate3d(preset: str, out: Path, seed: int = 0, progress: bool = True) -> dict:
    """Locked, atomic generation into `out` (a second process waits, then reuses the finished set)."""
    from .pipeline import MARKER, PARTIAL_PREFIX, _locked
    from .writers import dumps_json, write_atomic

    p = get_preset3d(preset)
    out = Path(out)
    if (m := manifest_ok(out, preset, seed)) is not None:
        return m
    _check_ours(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_dir = out.parent
    with _locked(lock_dir):
        if (m := manifest_ok(out, preset, seed)) is not None:
            return m
        _check_ours(out)
        tmp = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX + LAYOUT + "-", dir=lock_dir))
        try:
            manifest = _generate(p, tmp, seed, progress)
            write_atomic(tmp / "set" / MARKER, dumps_json({"generator": "bench.data.synth", "layout": LAYOUT,
                                                           "version": VERSION, "preset": p.name, "seed": seed,
                                                           "content_hash": manifest["content_hash"]}))
            if out.exists():
                os.rename(out, tmp / ".replaced")  # ours (checked under the lock)
            os.rename(tmp / "set", out)
            write_atomic(out / "manifest.json", dumps_json(manifest))  # last: the set is complete
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _sample(rng: np.random.Generator, sid: str, p: Preset3D):
    from .scene import SceneSpec, place_objects, sample_cameras, sample_room

    room = sample_room(rng)
    names = list(WEIGHTS)
    w = np.array([WEIGHTS[n] for n in names], float)
    n = int(rng.integers(p.min_objects, p.max_objects + 1))
    cats = [names[i] for i in rng.choice(len(names), size=n, p=w / w.sum())]
    big = {"bed", "sofa", "bookshelf", "cabinet", "table"}
    cats = [c for c in cats if c in big] + [c for c in cats if c not in big]
    objects = place_objects(rng, room, cats)
    return SceneSpec(sid, room, objects, sample_cameras(rng, room, objects, p.views))


def _fuse(views, poses, K, stride: int, voxel: float, rng: np.random.Generator):
    """One point per occupied voxel of the back-projected views: xyz, rgb, class, instance."""
    pts, rgb, cls, inst = [], [], [], []
    H, W = views[0].depth.shape
    v, u = np.mgrid[0:H:stride, 0:W:stride]
    for view, pose in zip(views, poses):
        z = view.depth[v, u].astype(np.float64)
        ok = z > 0
        x = (u[ok] - K[0, 2]) * z[ok] / K[0, 0]
        y = (v[ok] - K[1, 2]) * z[ok] / K[1, 1]
        cam = np.stack([x, y, z[ok], np.ones_like(x)], 1)
        pts.append((cam @ pose.T)[:, :3])
        rgb.append(view.rgb[v[ok], u[ok]])
        cls.append(view.semantic[v[ok], u[ok]])
        inst.append(view.instance[v[ok], u[ok]])
    pts, rgb, cls, inst = (np.concatenate(a) for a in (pts, rgb, cls, inst))
    order = rng.permutation(len(pts))
    keys = np.floor(pts[order] / voxel).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    keep = order[np.sort(first)]
    return pts[keep], rgb[keep], cls[keep], inst[keep]


def random_rigid(rng: np.random.Generator) -> np.ndarray:
    """Uniform random rotation (QR of a Gaussian, sign-fixed) and t ~ U(-1, 1)^3, as the released poses."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = q, rng.uniform(-1, 1, 3)
    return T


def _generate(p: Preset3D, tmp: Path, seed: int, progress: bool) -> dict:
    import io

    import torch
    from tqdm.auto import tqdm

    from bench.data.scannet import nyu40_to_20

    from .catalog import CLASS_NAMES
    from .render import Renderer, fovy_for_focal, intrinsics
    from .scannet3d_lang import scene_questions, scene_referrals
    from .writers import Sink, encode_depth_png, encode_jpeg, fmt_matrix

    def tsave(obj) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    fovy = fovy_for_focal(FOCAL, 240)
    K = intrinsics(320, 240, fovy)
    K4 = np.eye(4)
    K4[:3, :3] = K
    sink = Sink(tmp / "set")
    sink.write("scannet_2d/intrinsics.txt", fmt_matrix(K4).encode())
    lut20 = nyu40_to_20(np.array([NYU40[c] for c in CLASS_NAMES]))
    splits = {"train": [], "val": []}
    qa = {"train": [], "val": []}
    refs = {"train": [], "val": []}
    renderer = Renderer(320, 240, fovy)
    bar = tqdm(total=p.n_scenes * p.views, desc=f"synth-{p.name} 3d", unit="view", disable=not progress)
    try:
        for si in range(p.n_scenes):
            rng = np.random.default_rng([seed, 3, si])
            sid = f"scene{si:04d}_00"
            split = "val" if si % p.val_every == p.val_every - 1 else "train"
            splits[split].append(sid)
            scene = _sample(rng, sid, p)
            renderer.load(scene)
            views = []
            for vi, pose in enumerate(scene.poses):
                view = renderer.render(pose, amodal=False)
                f = vi * 20  # frame numbers of a frame_skip-20 export
                sink.write(f"scannet_2d/{sid}/color/{f}.jpg", encode_jpeg(view.rgb))
                sink.write(f"scannet_2d/{sid}/depth/{f}.png", encode_depth_png(view.depth))
                sink.write(f"scannet_2d/{sid}/pose/{f}.txt", fmt_matrix(pose).encode())
                views.append(view)
                bar.update(1)
            xyz, rgb, cls, inst = _fuse(views, scene.poses, K, p.stride, p.voxel, rng)
            labels20 = lut20[cls.astype(np.int64)]
            colors = rgb.astype(np.float64) / 127.5 - 1
            sink.write(f"scannet_3d/{split}/{sid}_vh_clean_2.pth",
                       tsave((xyz, colors, np.where(labels20 < 0, 255, labels20).astype(np.int64))))
            sink.write(f"process_ply/label_20/{sid}.pth", tsave(labels20.astype(np.int64)))
            ids = np.where(inst > 0, inst, -1).astype(np.int16)
            present = sorted(int(i) for i in np.unique(ids) if i > 0)
            corners = [scene.objects[i - 1].box_corners() for i in present]
            sink.write(f"scannetv2/{split}/{sid}.pth", tsave({
                "xyz": xyz.astype(np.float32), "rgb": rgb.astype(np.uint8), "sem_labels": labels20.astype(np.int8),
                "instance_ids": ids, "aabb_obj_ids": np.array(present, np.int16),
                "aabb_corner_xyz": np.array(corners, np.float32).reshape(-1, 8, 3)}))
            sink.write(f"lexicon3d/unified_pose/{sid}.pt", tsave(torch.from_numpy(random_rigid(rng)).float()))
            objs = [{"id": o.instance_id, "category": o.category, "colour": o.colour,
                     "centre": [round(float(c), 4) for c in o.box_centre], "size": [round(float(s), 4) for s in o.box_size]}
                    for o in scene.objects if o.instance_id in present]
            sink.write(f"synth_meta/{sid}.json", json.dumps({"scene_id": sid, "split": split, "objects": objs,
                                                               "points": int(len(xyz))}, indent=1).encode())
            qa[split] += scene_questions(sid, objs, split)
            refs[split] += scene_referrals(sid, objs)
    finally:
        bar.close()
        renderer.close()
    for s in ("train", "val"):
        sink.write(f"meta_data/scannetv2_{s}.txt", ("\n".join(splits[s]) + "\n").encode())
        sink.write(f"scanqa/ScanQA_v1.0_{s}.json", json.dumps(qa[s]).encode())
        sink.write(f"scanrefer/ScanRefer_filtered_{s}.json", json.dumps(refs[s], indent=4).encode())
    return {"generator": "bench.data.synth", "layout": LAYOUT, "version": VERSION, "preset": p.name, "seed": seed,
            "config": p.to_dict(), "intrinsics": K.round(6).tolist(), "fovy_deg": round(fovy, 6),
            "nyu40": NYU40, "splits": splits, "counts": {"qa": {s: len(v) for s, v in qa.items()},
                                                         "referrals": {s: len(v) for s, v in refs.items()}},
            "files": len(sink.hashes), "content_hash": sink.content_hash(), "focal": FOCAL,
            "pose_rule": "R uniform on SO(3), t ~ U(-1,1)^3 per scene", "frame_numbers": "view index x 20",
            "view_angle_deg": round(math.degrees(2 * math.atan(160 / FOCAL)), 3)}


def main(argv: list[str] | None = None) -> int:
    from bench.errors import BenchError

    ap = argparse.ArgumentParser(prog="python -m bench.data.synth.scannet3d")
    ap.add_argument("--preset", choices=sorted(PRESETS3D), default="tiny")
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    try:
        generate3d(a.preset, Path(a.out) if a.out else root3d(a.preset), a.seed, not a.no_progress)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
