"""Synthetic MuJoCo scenes: metric depth, masks vs. 3D boxes, determinism and the on-disk layouts."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data import synth

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures-real"
W, H = 640, 480


class RestrictedUnpickler(pickle.Unpickler):
    """Only builtins containers and numpy array reconstruction; anything else is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("builtins", "list"), ("builtins", "dict"), ("builtins", "tuple"), ("builtins", "set"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused {module}.{name}")


def restricted_load(path: Path):
    with open(path, "rb") as f:
        return RestrictedUnpickler(f).load()


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "tiny"
    manifest = synth.generate("tiny", out, seed=0, progress=False)
    return out, manifest


def load_scene(root: Path, sid: str):
    meta = json.loads((root / "scenes" / sid / "scene.json").read_text())
    return meta, {o["instance_id"]: o for o in meta["objects"]}


def read_matrix(path: Path) -> np.ndarray:
    return np.loadtxt(path).reshape(4, 4)


def box_local(points: np.ndarray, box: dict) -> np.ndarray:
    """World points -> the box's own frame (centred, unrotated)."""
    c, s = np.cos(box["yaw"]), np.sin(box["yaw"])
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return (points - np.asarray(box["centre"])) @ R


# ------------------------------------------------------------------------------------------ basics


def test_presets_and_errors(monkeypatch):
    assert {"tiny", "small", "full"} <= set(synth.PRESETS)
    with pytest.raises(ValueError, match="tiny"):
        synth.generate("huge", out="/nonexistent/never")
    monkeypatch.setenv("BENCH_HOME", "/x/y")
    assert synth.default_root("tiny") == Path("/x/y/data/synth-tiny")


def test_import_is_cheap():
    code = "import sys, bench.data.synth; assert 'mujoco' not in sys.modules; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_depth_probe_is_metric(tmp_path):
    for dist in (2.0, 3.337):
        r = synth.render_depth_probe(tmp_path / f"d{dist}", distance=dist)
        im = Image.open(r["depth"])
        assert im.mode == "I;16"
        d = np.array(im)
        assert d.dtype == np.uint16 and d.shape == (H, W)
        for u, v in r["face_pixels"]:
            assert abs(d[v, u] / 1000.0 - dist) <= 0.01, (u, v, d[v, u])
        # the face is planar in z-depth: a large patch around the centre is constant
        assert np.all(np.abs(d[200:280, 280:360] / 1000.0 - dist) <= 0.01)


# ------------------------------------------------------------------------------------------ manifest


def test_manifest(tiny):
    out, m = tiny
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == m
    assert m["preset"] == "tiny" and m["seed"] == 0 and m["version"] == synth.VERSION
    assert m["gl_backend"] in ("egl", "osmesa", "glfw")
    assert m["classes"][0] == "other" and {"wall", "floor"} <= set(m["classes"])
    assert m["counts"]["views"] == synth.PRESETS["tiny"].n_scenes * synth.PRESETS["tiny"].views_per_scene
    assert len(m["content_hash"]) == 64


def test_skip_when_up_to_date(tiny):
    out, m = tiny
    mtime = (out / "manifest.json").stat().st_mtime_ns
    assert synth.generate("tiny", out, seed=0, progress=False) == m
    assert (out / "manifest.json").stat().st_mtime_ns == mtime
    assert synth.ensure("tiny", root=out) == out


def test_determinism(tiny, tmp_path):
    out, m = tiny
    m2 = synth.generate("tiny", tmp_path / "same", seed=0, progress=False)
    assert m2["content_hash"] == m["content_hash"]
    assert (tmp_path / "same" / "manifest.json").read_bytes() == (out / "manifest.json").read_bytes()
    for rel in ("scenes/scene_0000/color/0.jpg", "scenes/scene_0001/depth/2.png", "retrieval/gnd_synth.pkl"):
        assert sha(tmp_path / "same" / rel) == sha(out / rel)
    m3 = synth.generate("tiny", tmp_path / "other", seed=1, progress=False)
    assert m3["content_hash"] != m["content_hash"]
    assert sha(tmp_path / "other" / "scenes/scene_0000/color/0.jpg") != sha(out / "scenes/scene_0000/color/0.jpg")


# ------------------------------------------------------------------------------------------ geometry


def iter_views(out: Path):
    for sdir in sorted(p for p in (out / "scenes").iterdir() if p.is_dir()):  # not the .bench-synth marker
        meta, objs = load_scene(out, sdir.name)
        K = read_matrix(sdir / "intrinsic" / "intrinsic_depth.txt")[:3, :3]
        for cam in meta["cameras"]:
            i = cam["index"]
            yield dict(
                meta=meta, objs=objs, K=K, cam=cam,
                pose=read_matrix(sdir / "pose" / f"{i}.txt"),
                depth=np.array(Image.open(sdir / "depth" / f"{i}.png")).astype(np.float64) / 1000.0,
                label=np.array(Image.open(sdir / "label" / f"{i}.png")),
                inst=np.array(Image.open(sdir / "instance" / f"{i}.png")),
            )


def test_masks_match_objects(tiny):
    out, m = tiny
    stuff = {m["classes"].index(c) for c in ("wall", "floor", "ceiling")}
    n_checked = 0
    for v in iter_views(out):
        assert v["label"].dtype == np.uint8 and v["inst"].shape == (H, W)
        assert (v["depth"] > 0).all()  # closed room: every pixel hits something
        for iid in np.unique(v["inst"]).tolist():
            mask = v["inst"] == iid
            if iid == 0:
                assert set(np.unique(v["label"][mask]).tolist()) <= stuff
                continue
            assert iid in v["objs"], iid
            assert (v["label"][mask] == v["objs"][iid]["class_id"]).all()
            assert m["classes"][v["objs"][iid]["class_id"]] == v["objs"][iid]["category"]
            n_checked += 1
    assert n_checked > 20


def test_box_centres_project_into_masks(tiny):
    out, _ = tiny
    n = 0
    for v in iter_views(out):
        w2c = np.linalg.inv(v["pose"])
        for st in v["cam"]["visible"]:
            if st["visibility"] < 0.9 or st["pixels"] < 2000:
                continue
            c = w2c[:3, :3] @ np.asarray(v["objs"][st["instance_id"]]["box"]["centre"]) + w2c[:3, 3]
            assert c[2] > 0
            u, vv = (v["K"] @ c)[:2] / c[2]
            ys, xs = np.nonzero(v["inst"] == st["instance_id"])
            tol = 12
            assert xs.min() - tol <= u <= xs.max() + tol and ys.min() - tol <= vv <= ys.max() + tol, st
            n += 1
    assert n >= 5


def test_depth_backprojects_into_boxes(tiny):
    out, _ = tiny
    n = 0
    for v in iter_views(out):
        K, pose = v["K"], v["pose"]
        for iid in np.unique(v["inst"]).tolist():
            if iid == 0:
                continue
            ys, xs = np.nonzero(v["inst"] == iid)
            z = v["depth"][ys, xs]
            cam = np.stack([(xs - K[0, 2]) / K[0, 0] * z, (ys - K[1, 2]) / K[1, 1] * z, z], 1)
            world = cam @ pose[:3, :3].T + pose[:3, 3]
            box = v["objs"][iid]["box"]
            local = box_local(world, box)
            inside = np.all(np.abs(local) <= np.asarray(box["size"]) / 2 + 0.01, axis=1)
            assert inside.all(), (iid, inside.mean())
            n += 1
    assert n > 20


# ------------------------------------------------------------------------------------------ layouts


def test_scannet_layout(tiny):
    out, _ = tiny
    sdir = out / "scenes" / "scene_0000"
    K = read_matrix(sdir / "intrinsic" / "intrinsic_color.txt")
    assert K[0, 0] == pytest.approx(518.8579, abs=1e-3) and K[0, 2] == pytest.approx((W - 1) / 2)
    pose = read_matrix(sdir / "pose" / "0.txt")
    R = pose[:3, :3]
    assert np.allclose(R.T @ R, np.eye(3), atol=1e-6) and np.linalg.det(R) == pytest.approx(1.0, abs=1e-6)
    assert R[2, 1] < 0  # camera y (down) points down in the z-up world (no roll)
    assert 1.0 <= pose[2, 3] <= 1.8
    meta, _ = load_scene(out, "scene_0000")
    assert meta["floor_plane"] == [0.0, 0.0, 1.0, 0.0]
    n = len(meta["cameras"])
    for sub, ext in (("color", "jpg"), ("depth", "png"), ("pose", "txt"), ("label", "png"), ("instance", "png")):
        assert len(list((sdir / sub).glob(f"*.{ext}"))) == n


def test_nyu_layout(tiny):
    out, m = tiny
    nyu = out / "nyu"
    train = (nyu / "nyu_train.txt").read_text().split("\n")[:-1]
    test = (nyu / "nyu_test.txt").read_text().split("\n")[:-1]
    assert len(train) == m["counts"]["nyu"]["train"] > 0 and len(test) == m["counts"]["nyu"]["test"] > 0
    train_scenes, test_scenes = set(), set()
    for line in train:
        rgb, dep, focal = line.split()
        assert rgb.startswith("/") and float(focal) == pytest.approx(518.8579)
        assert (nyu / "sync" / rgb[1:]).is_file() and (nyu / "sync" / dep[1:]).is_file()
        train_scenes.add(rgb.split("/")[1])
    for line in test:
        rgb, dep, focal = line.split()
        assert not rgb.startswith("/")
        assert (nyu / "official_splits/test" / rgb).is_file() and (nyu / "official_splits/test" / dep).is_file()
        test_scenes.add(rgb.split("/")[0])
    assert not train_scenes & test_scenes
    rgb, dep = test[0].split()[:2]
    im, d = Image.open(nyu / "official_splits/test" / rgb), Image.open(nyu / "official_splits/test" / dep)
    assert im.mode == "RGB" and im.size == (W, H) and d.mode == "I;16" and d.size == (W, H)
    assert 100 < np.array(d).max() < 12000  # millimetres
    real = REAL / "nyu" / "bookstore_0001d"
    if real.is_dir():  # same file naming, modes and dtypes as the real NYU sample
        assert Image.open(real / "rgb_00001.jpg").mode == im.mode
        assert Image.open(real / "sync_depth_00001.png").mode == d.mode
        assert np.array(Image.open(real / "sync_depth_00001.png")).dtype == np.array(d).dtype
        assert {p.name[:4] for p in real.iterdir()} == {Path(rgb).name[:4], Path(dep).name[:4]}


def test_ade_layout(tiny):
    out, m = tiny
    root = out / "ade" / "ADEChallengeData2016"
    classes = json.loads((out / "ade" / "classes.json").read_text())
    assert classes["classes"] == m["classes"] and classes["classes"][0] == "other"
    assert len(classes["palette"]) == len(classes["classes"])
    for split, prefix in (("training", "ADE_train_"), ("validation", "ADE_val_")):
        imgs = sorted(p.stem for p in (root / "images" / split).glob("*.jpg"))
        anns = sorted(p.stem for p in (root / "annotations" / split).glob("*.png"))
        assert imgs == anns and len(imgs) == m["counts"]["ade"][split] > 0
        assert all(s.startswith(prefix) and len(s) == len(prefix) + 8 for s in imgs)
        a = Image.open(root / "annotations" / split / f"{anns[0]}.png")
        assert a.mode == "L" and int(np.array(a).max()) < len(classes["classes"])


def test_imagefolder_layout(tiny):
    out, m = tiny
    train = sorted(p.name for p in (out / "cls" / "train").iterdir())
    val = sorted(p.name for p in (out / "cls" / "val").iterdir())
    assert len(train) >= 2 and train == val == m["counts"]["cls"]["categories"]
    assert sum(n >= 5 for n in m["counts"]["cls"]["train"].values()) >= 3
    for split in ("train", "val"):
        for c in train:
            files = list((out / "cls" / split / c).glob("*.JPEG"))
            assert len(files) == m["counts"]["cls"][split][c] > 0
    im = Image.open(files[0])
    assert im.mode == "RGB" and min(im.size) >= 28 and max(im.size) / min(im.size) <= 1.01


def test_retrieval_gnd(tiny):
    out, m = tiny
    gnd = restricted_load(out / "retrieval" / "gnd_synth.pkl")
    assert set(gnd) == {"imlist", "qimlist", "gnd"}
    imlist, qimlist = gnd["imlist"], gnd["qimlist"]
    assert isinstance(imlist, list) and isinstance(qimlist, list) and len(gnd["gnd"]) == len(qimlist) > 0
    assert not set(imlist) & set(qimlist)
    for name in imlist + qimlist:
        assert (out / "retrieval" / "jpg" / f"{name}.jpg").is_file()
    for g in gnd["gnd"]:
        assert set(g) == {"easy", "hard", "junk", "bbx"}
        idx = g["easy"] + g["hard"] + g["junk"]
        assert all(isinstance(i, int) and 0 <= i < len(imlist) for i in idx)
        assert len(set(idx)) == len(idx) and len(g["easy"] + g["hard"]) >= 1
        x1, y1, x2, y2 = g["bbx"]
        assert all(isinstance(x, float) for x in g["bbx"]) and 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H
    assert m["counts"]["retrieval"] == {"queries": len(qimlist), "database": len(imlist)}


def test_real_gnd_loads_with_same_unpickler():
    path = REAL / "roxford5k" / "gnd_roxford5k.pkl"
    if not path.is_file():
        pytest.skip("real fixtures absent")
    real = restricted_load(path)
    assert set(real) == {"imlist", "qimlist", "gnd"} and set(real["gnd"][0]) == {"easy", "hard", "junk", "bbx"}
    assert isinstance(real["gnd"][0]["easy"], list)
