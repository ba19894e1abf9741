"""Generate a synthetic dataset and write it in the native layouts of real benchmarks.

See docs/synthetic_data.md for the layouts and conventions.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import catalog
from .gl import select_gl_backend
from .presets import Preset, get_preset
from .views import _is_val, _r, view_stats, _square_crop_box, _scene_json, _prune_cls, _retrieval
from .writers import Sink, dumps_json, encode_depth_png, encode_jpeg, encode_png, fmt_matrix, write_atomic

log = logging.getLogger(__name__)

VERSION = "1.0.0"
LAYOUT_DIRS = ("scenes", "nyu", "ade", "cls", "retrieval")



def default_root(preset: str) -> Path:
    return Path(os.environ.get("BENCH_HOME", ".bench")) / "data" / f"synth-{preset}"


MARKER = ".bench-synth"  # JSON written into every layout folder the generator creates (generator, version, preset, seed, content_hash)
LOCK = ".bench-synth.lock"  # fcntl lock file in the output folder: one generator at a time
PARTIAL_PREFIX = ".bench-synth-partial-"  # the temporary folder a generation writes into, inside the output


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _is_ours(folder: Path) -> bool:
    """A folder the generator wrote: it holds our marker file."""
    m = _read_json(folder / MARKER)
    return isinstance(m, dict) and m.get("generator") == "bench.data.synth"


def _manifest_matches(out: Path, preset: str, seed: int) -> dict | None:
    """The manifest when `out` holds the complete set for (preset, seed, generator version).

    The manifest is written last, after every layout folder is in place, so its presence means the
    set is complete; the layout folders' markers (when present) must name the same content hash."""
    m = _read_json(out / "manifest.json")
    if not isinstance(m, dict):
        return None
    if m.get("preset") != preset or m.get("seed") != seed or m.get("version") != VERSION:
        return None
    for d in LAYOUT_DIRS:
        if not (out / d).is_dir():
            return None
        marker = _read_json(out / d / MARKER)
        if marker is not None and (not isinstance(marker, dict) or marker.get("content_hash") != m.get("content_hash")):
            return None
    return m


def check_output(out: Path) -> None:
    """Refuse (`DataError` naming it) before any work when replacing the set in `out` would delete
    something the generator did not write: a layout folder without our marker, or a foreign manifest."""
    from bench.errors import DataError

    for d in LAYOUT_DIRS:
        folder = out / d
        if (folder.exists() or folder.is_symlink()) and not (folder.is_dir() and not folder.is_symlink()
                                                               and _is_ours(folder)):
            raise DataError(folder, f"exists and was not written by the synthetic generator (no {MARKER} marker); "
                                    f"refusing to replace it. Generate into another folder (--out), or move it away "
                                    f"(if it is an old synthetic set, delete it yourself)")
    mf = out / "manifest.json"
    if mf.exists():
        m = _read_json(mf)
        if not (isinstance(m, dict) and m.get("generator") == "bench.data.synth"):
            raise DataError(mf, "exists and is not a manifest of the synthetic generator; refusing to overwrite it. "
                                "Generate into another folder (--out)")


@contextlib.contextmanager
def _locked(out: Path):
    """An exclusive fcntl lock on `out/.bench-synth.lock` (waits for a generation in progress)."""
    import fcntl

    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another generation into %s to finish", out)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock (also released by the kernel if this process is killed)


def _sweep_partials(out: Path) -> None:
    """Remove temporary folders left by killed runs, if no generation holds the lock right now."""
    import fcntl

    stale = list(out.glob(PARTIAL_PREFIX + "*"))
    if not stale:
        return
    try:
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # read-only data folder: leave them
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return
    try:
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        os.close(fd)


def generate(preset: str = "tiny", out: str | Path | None = None, seed: int = 0, progress: bool = True) -> dict:
    """Generate the ``preset`` dataset into ``out`` (default: :func:`default_root`); return the manifest.

    Does nothing if ``out/manifest.json`` already records the same preset, seed and generator version.
    Otherwise, under an exclusive lock on ``out`` (a second process waits, then finds the finished
    set), the set is generated into a temporary folder inside ``out`` and moved into place; the
    manifest is removed first and written last (atomically), so an interrupted or killed run never
    leaves a manifest for incomplete data. Only folders the generator wrote (marker ``.bench-synth``)
    are ever replaced: any other ``scenes/ nyu/ ade/ cls/ retrieval/`` or a foreign ``manifest.json``
    in ``out`` is refused with a ``DataError`` naming it, before any work.
    """
    p = get_preset(preset)
    seed = int(seed)
    out = Path(out) if out is not None else default_root(preset)
    existing = _manifest_matches(out, preset, seed)
    if existing is not None:
        log.info("synthetic %s (seed %d) already at %s", preset, seed, out)
        _sweep_partials(out)
        return existing
    check_output(out)
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        existing = _manifest_matches(out, preset, seed)  # another process may have finished it meanwhile
        if existing is not None:
            log.info("synthetic %s (seed %d) already at %s (generated by another process)", preset, seed, out)
            return existing
        check_output(out)
        for stale in out.glob(PARTIAL_PREFIX + "*"):  # left by a killed run (we hold the lock: nobody uses them)
            shutil.rmtree(stale, ignore_errors=True)
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=out))
        try:
            backend = select_gl_backend()
            manifest = _generate(p, tmp, seed, backend, progress)
            marker = dumps_json({"generator": "bench.data.synth", "version": VERSION, "preset": p.name, "seed": seed,
                                 "content_hash": manifest["content_hash"]})
            for d in LAYOUT_DIRS:
                (tmp / d).mkdir(exist_ok=True)
                write_atomic(tmp / d / MARKER, marker)
            _install(tmp, out, manifest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("synthetic %s (seed %d): %d files in %.1fs at %s", preset, seed, manifest["files"], time.perf_counter() - t0, out)
    return manifest


def _install(tmp: Path, out: Path, manifest: dict) -> None:
    """Move the generated layout folders from `tmp` into `out` (replacing ours), manifest last."""
    (out / "manifest.json").unlink(missing_ok=True)  # from here on the set in `out` is not trusted
    trash = tmp / ".replaced"
    trash.mkdir()
    for d in LAYOUT_DIRS:
        if (out / d).exists():  # ours: check_output ran under the lock
            os.rename(out / d, trash / d)
        os.rename(tmp / d, out / d)
    write_atomic(out / "manifest.json", dumps_json(manifest))


def ensure(preset: str = "tiny", root: str | Path | None = None, seed: int = 0, progress: bool = True) -> Path:
    """Generate the preset if it is missing (or stale) and return its root folder.

    Generation runs in a child process: an OpenGL (EGL/OSMesa) context left in a long-lived process
    that later imports triton / torchvision.transforms.v2 crashes it (seen with Mesa here), and the
    benchmark and trainer processes must stay clean.
    """
    from bench.errors import BenchError

    root = Path(root) if root is not None else default_root(preset)
    get_preset(preset)  # unknown presets fail here, with the list
    if _manifest_matches(root, preset, int(seed)) is None:
        check_output(root)  # a refusal is a clear error here, not a child's traceback
        cmd = [sys.executable, "-m", "bench.data.synth", "--preset", preset, "--out", str(root), "--seed", str(seed)]
        if not progress:
            cmd.append("--no-progress")
        done = subprocess.run(cmd)
        if done.returncode != 0:
            raise BenchError(f"synthetic scene generation failed (exit {done.returncode}): {' '.join(cmd)}")
    return root


def _generate(p: Preset, out: Path, seed: int, backend: str, progress: bool) -> dict:
    from tqdm.auto import tqdm

    from .render import Renderer, fovy_for_focal, intrinsics
    from .scene import sample_scene

    W, H = p.width, p.height
    fovy = fovy_for_focal(p.focal, H)
    K = intrinsics(W, H, fovy)
    K4 = np.eye(4)
    K4[:3, :3] = K
    sink = Sink(out)
    focal_str = f"{p.focal:.4f}"
    nyu_lines = {"train": [], "test": []}
    ade_count = {"training": 0, "validation": 0}
    cls_count: dict[str, dict[str, int]] = {"train": {}, "val": {}}
    retrieval_views: list[dict] = []  # per view: name, scene index, stats
    scene_ids = {"train": [], "val": []}
    n_views = 0

    inst_dtype = np.uint8 if p.max_objects < 256 else np.uint16
    renderer = Renderer(W, H, fovy)
    writer = _BackgroundWriter()
    bar = tqdm(total=p.n_scenes * p.views_per_scene, desc=f"synth-{p.name}", unit="view", disable=not progress)
    try:
        for si in range(p.n_scenes):
            rng = np.random.default_rng([seed, si])
            sid = f"scene_{si:04d}"
            split = "val" if _is_val(p, si) else "train"
            scene_ids[split].append(sid)
            n_obj = int(rng.integers(p.min_objects, p.max_objects + 1))
            scene = sample_scene(rng, sid, n_obj, p.views_per_scene)
            renderer.load(scene)
            cams = []
            for vi, pose in enumerate(scene.poses):
                view = renderer.render(pose, amodal=True)
                stats = view_stats(view, scene, pose, K)
                ade_split = "training" if split == "train" else "validation"
                ade_count[ade_split] += 1
                ade_stem = f"ADE_{'train' if split == 'train' else 'val'}_{ade_count[ade_split]:08d}"
                objs = {o.instance_id: o for o in scene.objects}
                crops = []
                for iid, st in stats.items():
                    x1, y1, x2, y2 = st["bbox"]
                    if (st["pixels"] < p.min_crop_pixels or min(x2 - x1 + 1, y2 - y1 + 1) < p.min_crop_side
                            or st["visibility"] < p.min_crop_visibility):
                        continue
                    cat = objs[iid].category
                    crops.append((f"cls/{split}/{cat}/{sid}_{vi:03d}_{iid:02d}.JPEG", _square_crop_box(st["bbox"], W, H)))
                    cls_count[split][cat] = cls_count[split].get(cat, 0) + 1
                if split == "train":
                    nyu_lines["train"].append(f"/{sid}/rgb_{vi:05d}.jpg /{sid}/sync_depth_{vi:05d}.png {focal_str}")
                else:
                    nyu_lines["test"].append(f"{sid}/rgb_{vi:05d}.jpg {sid}/sync_depth_{vi:05d}.png {focal_str}")
                name = f"{sid}_{vi:03d}"
                retrieval_views.append({"name": name, "scene": si, "view": vi, "stats": stats})
                writer.submit(_write_view, sink, view, pose, sid, vi, split, ade_stem, crops, name, inst_dtype)
                cams.append({"index": vi, "color": f"color/{vi}.jpg", "depth": f"depth/{vi}.png",
                             "label": f"label/{vi}.png", "instance": f"instance/{vi}.png", "pose": f"pose/{vi}.txt",
                             "camera_to_world": _r(pose, 8), "visible": [stats[k] for k in sorted(stats)]})
                n_views += 1
                bar.update(1)
            sink.write(f"scenes/{sid}/intrinsic/intrinsic_color.txt", fmt_matrix(K4).encode())
            sink.write(f"scenes/{sid}/intrinsic/intrinsic_depth.txt", fmt_matrix(K4).encode())
            sink.write(f"scenes/{sid}/scene.json", dumps_json(_scene_json(scene, split, cams, K, W, H, fovy)))
        writer.drain()
    finally:
        writer.close()
        bar.close()
        renderer.close()

    # split files and class lists
    sink.write("nyu/nyu_train.txt", ("\n".join(nyu_lines["train"]) + "\n").encode())
    sink.write("nyu/nyu_test.txt", ("\n".join(nyu_lines["test"]) + "\n").encode())
    classes = {"classes": list(catalog.CLASS_NAMES), "palette": catalog.palette(), "reduce_zero_label": True,
               "ignore_index_after_reduce": 255, "num_classes_after_reduce": len(catalog.CLASS_NAMES) - 1}
    sink.write("ade/classes.json", dumps_json(classes))
    cls_categories = _prune_cls(out, sink, cls_count)
    gnd, n_db = _retrieval(p, seed, retrieval_views, W, H)
    sink.write("retrieval/gnd_synth.pkl", pickle.dumps(gnd, protocol=4))

    return {
        "generator": "bench.data.synth",
        "version": VERSION,
        "preset": p.name,
        "seed": seed,
        "config": p.to_dict(),
        "gl_backend": backend,
        "image_size": [W, H],
        "intrinsics": _r(K, 6),
        "fovy_deg": round(fovy, 6),
        "depth": {"units": "millimetres (uint16 PNG)", "scale": 1000, "invalid": 0, "kind": "planar z-depth"},
        "classes": list(catalog.CLASS_NAMES),
        "categories": list(catalog.CATEGORY_NAMES),
        "splits": {"train_scenes": scene_ids["train"], "val_scenes": scene_ids["val"]},
        "counts": {
            "scenes": p.n_scenes,
            "views": n_views,
            "nyu": {"train": len(nyu_lines["train"]), "test": len(nyu_lines["test"])},
            "ade": dict(ade_count),
            "cls": {"categories": cls_categories,
                    "train": {c: cls_count["train"][c] for c in cls_categories},
                    "val": {c: cls_count["val"][c] for c in cls_categories}},
            "retrieval": {"queries": len(gnd["qimlist"]), "database": n_db},
        },
        "files": len(sink.hashes),
        "content_hash": sink.content_hash(),
    }


def _write_view(sink: Sink, view, pose, sid, vi, split, ade_stem, crops, name, inst_dtype) -> None:
    """Encode one view and write it into every layout (runs on the background writer thread)."""
    jpg = encode_jpeg(view.rgb)
    dpng = encode_depth_png(view.depth)
    lpng = encode_png(view.semantic)
    ipng = encode_png(view.instance.astype(inst_dtype))
    # 1. ScanNet-style posed views
    base = f"scenes/{sid}"
    sink.write(f"{base}/color/{vi}.jpg", jpg)
    sink.write(f"{base}/depth/{vi}.png", dpng)
    sink.write(f"{base}/pose/{vi}.txt", fmt_matrix(pose).encode())
    sink.write(f"{base}/label/{vi}.png", lpng)
    sink.write(f"{base}/instance/{vi}.png", ipng)
    # 2. NYUv2 (BTS layout): train scenes under sync/, val scenes under official_splits/test/
    nyu = f"nyu/sync/{sid}" if split == "train" else f"nyu/official_splits/test/{sid}"
    sink.write(f"{nyu}/rgb_{vi:05d}.jpg", jpg)
    sink.write(f"{nyu}/sync_depth_{vi:05d}.png", dpng)
    # 3. ADE20K
    ade_split = "training" if split == "train" else "validation"
    sink.write(f"ade/ADEChallengeData2016/images/{ade_split}/{ade_stem}.jpg", jpg)
    sink.write(f"ade/ADEChallengeData2016/annotations/{ade_split}/{ade_stem}.png", lpng)
    # 4. ImageFolder crops
    for rel, (l, t, r, b) in crops:
        sink.write(rel, encode_jpeg(view.rgb[t:b, l:r]))
    # 5. retrieval images
    sink.write(f"retrieval/jpg/{name}.jpg", jpg)


class _BackgroundWriter:
    """One worker thread for encoding/writing (PIL and zlib release the GIL), with a bounded backlog."""

    def __init__(self, max_pending: int = 6):
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-writer")
        self.pending: list = []
        self.max_pending = max_pending

    def submit(self, fn, *args) -> None:
        self.pending.append(self.pool.submit(fn, *args))
        while len(self.pending) > self.max_pending:
            self.pending.pop(0).result()

    def drain(self) -> None:
        while self.pending:
            self.pending.pop(0).result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


