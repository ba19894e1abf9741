"""Build the three SpatialBoost training sets (LLaVA JSON + images + tokenizer + manifest) from the
synthetic ScanNet-style scenes.

    stage 1  stage1_captions.json   one BLIP-558K-style caption per image           (projector alignment)
    stage 2  stage2_instruct.json   LLaVA-Instruct-style Q/A per image + 2/4/8-view VQA (instruction tuning)
    stage 3  stage3_spatial_cot.json  12-turn spatial chain-of-thought per image   (encoder fine-tuning)

Only the synthetic *train* scenes are used (the val scenes feed the evaluation tasks). The tokenizer
is trained on stage 1 + stage 2 + the full forward stage-3 text + all templates, independent of
``order`` and ``levels``, so the ablation variants of one preset/seed share one tokenizer. The
manifest is written last (atomically); its sha256 is the recipe's identity.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.data.scenes import CanonicalFrame, Plane, ViewGeometry, load_scene, load_synth_view, object_cubes
from bench.io import atomic_path
from bench.paths import bench_home
from bench.vlm.llava import IMAGE_TOKEN, write_llava
from bench.vlm.tokenizer import DEFAULT_SYSTEM, DEFAULT_VOCAB, save_tokenizer, train_tokenizer

from . import captions as cap
from .annotators import Annotators, Observation, annotate_view
from .cot import ORDERS, TURNS_PER_LEVEL, CotConfig, InsufficientContent, arrange, spatial_turns, to_conversation
from .multiview import (MVConfig, MVView, distance_matrix, make_distance, multiview_prompt, multiview_qa, select_sets,
                        virtual_views)
from .templates import LEVELS, all_template_text

RECIPE_VERSION = "1.0.0"
FILES = {"stage1": "stage1_captions.json", "stage2": "stage2_instruct.json", "stage3": "stage3_spatial_cot.json"}


@dataclass(frozen=True)
class Recipe:
    """Everything a training run needs, on disk."""

    root: Path
    stage1: Path
    stage2: Path
    stage3: Path
    image_root: Path
    tokenizer_dir: Path
    manifest_hash: str

    def stage(self, k: int) -> Path:
        return {1: self.stage1, 2: self.stage2, 3: self.stage3}[k]

    @property
    def manifest(self) -> dict:
        return json.loads((self.root / "manifest.json").read_text())


@dataclass(frozen=True)
class RecipePreset:
    name: str
    synth_preset: str
    splits: tuple[str, ...] = ("train",)
    captions_per_image: int = 1  # stage 1
    instruct_per_image: int = 1  # stage 2 single-image conversations
    cot_per_image: int = 1  # stage 3 (the paper: one 12-turn conversation per image)
    multiview_per_scene: dict = field(default_factory=lambda: {2: 8, 4: 3, 8: 1})  # paper ratio 160K:30K:10K
    vocab_size: int = DEFAULT_VOCAB


PRESETS: dict[str, RecipePreset] = {
    "tiny": RecipePreset("tiny", "tiny", cot_per_image=2, multiview_per_scene={2: 4, 4: 2, 8: 1}),
    "small": RecipePreset("small", "small"),
    "full": RecipePreset("full", "full", multiview_per_scene={2: 16, 4: 3, 8: 1}),
}


def get_preset(name: str) -> RecipePreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown recipe preset {name!r}; valid presets: {', '.join(PRESETS)}") from None


def normalise_levels(levels) -> tuple[str, ...]:
    if isinstance(levels, str):
        levels = tuple(x for x in levels.replace("+", ",").split(",") if x)
    levels = tuple(levels)
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad or not levels:
        raise ValueError(f"levels must be a non-empty subset of {LEVELS}, got {levels!r}")
    return tuple(lv for lv in LEVELS if lv in levels)


def default_out(preset: str, order: str, levels: tuple[str, ...], seed: int = 0) -> Path:
    name = f"sb-{preset}-{order}-{'+'.join(levels)}" + (f"-s{seed}" if seed else "")
    return bench_home() / "data" / name


def recipe_status(preset: str = "tiny") -> tuple[bool, str]:
    """Can a recipe be built here? Synthetic data: always, once the preset exists."""
    try:
        p = get_preset(preset)
    except ValueError as e:
        return False, str(e)
    from bench.data.synth import default_root

    root = default_root(p.synth_preset)
    if (root / "manifest.json").is_file():
        return True, f"synthetic {p.synth_preset} scenes at {root}; the recipe builds in seconds to minutes"
    return True, f"synthetic {p.synth_preset} scenes are generated on first use (into {root})"


# --------------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def _lock(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _recipe_from(out: Path, manifest_bytes: bytes) -> Recipe:
    m = json.loads(manifest_bytes)
    return Recipe(root=out, stage1=out / m["files"]["stage1"]["path"], stage2=out / m["files"]["stage2"]["path"],
                  stage3=out / m["files"]["stage3"]["path"], image_root=out / m["image_root"],
                  tokenizer_dir=out / m["tokenizer"]["path"], manifest_hash=hashlib.sha256(manifest_bytes).hexdigest())


def load_recipe(root: str | Path) -> Recipe:
    """The recipe built in ``root`` (raises FileNotFoundError when it has no manifest)."""
    root = Path(root).resolve()
    return _recipe_from(root, (root / "manifest.json").read_bytes())


def _existing(out: Path, key: dict) -> Recipe | None:
    mf = out / "manifest.json"
    if not mf.is_file():
        return None
    try:
        raw = mf.read_bytes()
        m = json.loads(raw)
    except (OSError, ValueError):
        return None
    if m.get("key") != key:
        return None
    files = [out / f["path"] for f in m["files"].values()] + [out / m["tokenizer"]["path"] / "tokenizer.json"]
    if not all(p.is_file() for p in files):
        return None
    return _recipe_from(out, raw)


def _link(src: Path, dst: Path) -> None:
    if dst.exists():
        if dst.stat().st_size == src.stat().st_size:
            return
        dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _save_jpeg(rgb: np.ndarray, dst: Path) -> None:
    from PIL import Image

    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        Image.fromarray(rgb).save(tmp, format="JPEG", quality=95)


def _known_plane(view) -> Plane | None:
    k = view.known_floor()
    return None if k is None else Plane(k[0] / np.linalg.norm(k[0]), float(k[1]))


# --------------------------------------------------------------------------------------------------


def build_recipe(preset: str = "tiny", out: Path | None = None, seed: int = 0, order: str = "forward",
                 levels: tuple[str, ...] = LEVELS, progress: bool = True, *, distance: str = "auto",
                 annotators: Annotators | None = None, synth_root: Path | None = None, force: bool = False) -> Recipe:
    """Build (or reuse) the recipe; idempotent: returns at once when the manifest matches."""
    p = get_preset(preset)
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    levels = normalise_levels(levels)
    seed = int(seed)
    out = Path(out if out is not None else default_out(preset, order, levels, seed)).resolve()
    from bench.data.synth import ensure

    synth = Path(ensure(p.synth_preset, root=synth_root, progress=progress)).resolve()
    synth_manifest = json.loads((synth / "manifest.json").read_text())
    ann = annotators or Annotators()
    dist = make_distance(distance)
    key = {"version": RECIPE_VERSION, "preset": p.name, "seed": seed, "order": order, "levels": list(levels),
           "synth_content_hash": synth_manifest.get("content_hash"), "distance": dist.name,
           "annotators": ann.describe()}
    with _lock(out):
        if not force:
            hit = _existing(out, key)
            if hit is not None:
                return hit
        t0 = time.perf_counter()
        (out / "manifest.json").unlink(missing_ok=True)
        manifest = _build(p, out, seed, order, levels, progress, dist, ann, synth, synth_manifest)
        manifest["key"] = key
        raw = (json.dumps(manifest, indent=1, sort_keys=True, default=str) + "\n").encode()
        # wall time is kept out of the manifest so that its hash depends on the content only
        (out / "build_log.json").write_text(json.dumps({"seconds": round(time.perf_counter() - t0, 2)}) + "\n")
        with atomic_path(out / "manifest.json") as tmp:  # last: a manifest means complete data
            tmp.write_bytes(raw)
        return _recipe_from(out, raw)


def _build(p: RecipePreset, out: Path, seed: int, order: str, levels: tuple[str, ...], progress: bool, dist, ann: Annotators,
           synth: Path, synth_manifest: dict) -> dict:
    from tqdm.auto import tqdm

    cfg = CotConfig(cube_trim=0.0 if ann.ground_truth else 0.02)
    mvcfg = MVConfig()
    img_root = out / "images"
    scene_dirs = []
    for sd in sorted((synth / "scenes").iterdir()):
        if (sd / "scene.json").is_file():
            meta = load_scene(sd)
            if meta.get("split", "train") in p.splits:
                scene_dirs.append((sd, meta))
    if not scene_dirs:
        raise RuntimeError(f"no {'/'.join(p.splits)} scenes under {synth / 'scenes'}")
    s1, s2i, s2mv, s3 = [], [], {2: [], 4: [], 8: []}, []
    corpus: list[str] = []
    floor_err, floor_fallback, skipped, virtual_count, n_views = [], 0, 0, 0, 0
    pair_stats = {"pairs": 0, "in_band": 0}
    total = sum(len(m["cameras"]) for _, m in scene_dirs)
    bar = tqdm(total=total, desc=f"sb-data {p.name}", unit="view", disable=not progress)
    try:
        for si, (sd, meta) in enumerate(scene_dirs):
            sid = meta["scene_id"]
            mvs: list[MVView] = []
            rels: dict[str, str] = {}
            for cam in meta["cameras"]:
                vi = int(cam["index"])
                view = load_synth_view(sd, cam, meta)
                rel = f"{sid}/{vi}.jpg"
                _link(view.image_path, img_root / rel)
                rgb = None
                if not ann.ground_truth:
                    rgb = _rgb(view.image_path)
                    view = annotate_view(view, rgb, ann)
                rels[view.key] = rel
                mv = MVView(view, rgb)
                mvs.append(mv)
                rng = lambda *tag: np.random.default_rng([seed, si, vi, *tag])  # noqa: E731
                try:
                    geom = ViewGeometry.compute(view, rng(0), trim=cfg.cube_trim)
                except ValueError:
                    plane = _known_plane(view)
                    if plane is None:
                        skipped += 1
                        bar.update(1)
                        continue
                    frame = CanonicalFrame.from_floor(plane)
                    geom = ViewGeometry(view, plane, frame, object_cubes(view, frame, 1, cfg.cube_trim))
                    floor_fallback += 1
                if geom.floor_error:
                    floor_err.append((geom.floor_error["angle_deg"], geom.floor_error["height_m"]))
                min_px = cfg.min_pixels(view.hw)
                # stage 1: captions
                for k in range(p.captions_per_image):
                    r = rng(1, k)
                    if ann.captioner is not None and not ann.captioner.is_ground_truth:
                        text = ann.captioner(Observation(mv.rgb, view.K, view.key, view.cam_to_world))
                    else:
                        text = cap.short_caption(geom, r, min_px)
                    conv = [{"from": "human", "value": f"{IMAGE_TOKEN}\n{cap.brief_prompt(r)}"}, {"from": "gpt", "value": text}]
                    s1.append({"id": f"s1-{sid}-{vi}-{k}", "image": rel, "conversations": conv})
                # stage 2: single-image instructions
                for k in range(p.instruct_per_image):
                    r = rng(2, k)
                    qa = cap.instruct_conversation(geom, r, min_px, n_turns=int(r.integers(2, 5)))
                    conv = to_conversation_pairs(qa, IMAGE_TOKEN)
                    s2i.append({"id": f"s2-{sid}-{vi}-{k}", "image": rel, "conversations": conv})
                # stage 3: spatial chain-of-thought
                for k in range(p.cot_per_image):
                    try:
                        turns = spatial_turns(geom, rng(3, k), cfg)
                    except InsufficientContent:
                        skipped += 1
                        continue
                    corpus += [t.question for t in turns] + [t.answer for t in turns]
                    kept = arrange(turns, order, levels, rng(4, k))
                    s3.append({"id": f"s3-{sid}-{vi}-{k}", "image": rel, "conversations": to_conversation(kept, IMAGE_TOKEN)})
                n_views += 1
                bar.update(1)
            # stage 2: multi-view VQA
            n_real = len(mvs)
            need = max((n for n, c in p.multiview_per_scene.items() if c > 0), default=0)
            pool = mvs + (virtual_views(mvs, need - n_real) if need > n_real else [])
            for mv in pool[n_real:]:
                tag = mv.view.key.split("@", 1)[1]
                parent_idx = mv.parent.split("/")[-1]
                rel = f"{sid}/virtual/{parent_idx}_{tag}.jpg"
                _save_jpeg(mv.rgb, img_root / rel)
                rels[mv.view.key] = rel
                virtual_count += 1
            D = distance_matrix(pool, dist)
            iu = np.triu_indices(n_real, 1)
            pair_stats["pairs"] += len(iu[0])
            pair_stats["in_band"] += int(((D[iu] >= dist.band[0]) & (D[iu] <= dist.band[1])).sum())
            names_all = {o["instance_id"]: f"{o['colour']} {o['category']}" if o.get("colour") else o["category"]
                         for o in meta["objects"]}
            vals = list(names_all.values())
            names = {i: n for i, n in names_all.items() if vals.count(n) == 1}
            categories = {o["instance_id"]: o["category"] for o in meta["objects"]}
            for n, count in sorted(p.multiview_per_scene.items()):
                if count <= 0:
                    continue
                sub = n_real if n <= n_real else len(pool)
                r = np.random.default_rng([seed, si, 10_000 + n])
                for k, idx in enumerate(select_sets(D[:sub, :sub], n, count, dist.band, r)):
                    views = [pool[i] for i in idx]
                    qa = multiview_qa(views, names, categories, r, mvcfg)
                    if not qa:
                        continue
                    conv = to_conversation_pairs(qa, None)
                    conv[0]["value"] = multiview_prompt(n, IMAGE_TOKEN) + conv[0]["value"]
                    s2mv[n].append({"id": f"s2mv{n}-{sid}-{k}", "image": [rels[v.view.key] for v in views],
                                    "conversations": conv})
    finally:
        bar.close()
    # tokenizer (same corpus for every order / level subset of this preset and seed)
    for data in (s1, s2i, *s2mv.values()):
        for s in data:
            corpus += [t["value"].replace(IMAGE_TOKEN, "") for t in s["conversations"]]
    corpus += all_template_text() + [DEFAULT_SYSTEM, "system", "user", "assistant"]
    tok = train_tokenizer(corpus, p.vocab_size)
    tok_tmp = out / ".tokenizer.tmp"
    shutil.rmtree(tok_tmp, ignore_errors=True)
    tok_hash = save_tokenizer(tok, tok_tmp)
    shutil.rmtree(out / "tokenizer", ignore_errors=True)
    os.replace(tok_tmp, out / "tokenizer")
    # JSON files
    stage2 = s2i + [s for n in sorted(s2mv) for s in s2mv[n]]
    files = {}
    for name, data in (("stage1", s1), ("stage2", stage2), ("stage3", s3)):
        path = out / FILES[name]
        write_llava(path, data, img_root)
        files[name] = {"path": FILES[name], "samples": len(data), "sha256": _sha256(path)}
    fe = np.array(floor_err) if floor_err else np.zeros((0, 2))
    return {
        "format": "llava-json", "version": RECIPE_VERSION, "preset": p.name, "seed": seed, "order": order,
        "levels": list(levels), "image_root": "images",
        "synth": {"preset": p.synth_preset, "root": str(synth), "content_hash": synth_manifest.get("content_hash"),
                  "splits": list(p.splits), "scenes": [m["scene_id"] for _, m in scene_dirs]},
        "files": files,
        "counts": {"views": n_views, "stage1": len(s1), "stage2_instruct": len(s2i),
                   "stage2_multiview": {str(n): len(v) for n, v in s2mv.items()}, "stage3": len(s3),
                   "stage3_turns_per_sample": sum(TURNS_PER_LEVEL[lv] for lv in levels),
                   "stage3_skipped": skipped, "virtual_views": virtual_count, "floor_fit_fallbacks": floor_fallback},
        "distance": {**dist.describe(), "real_pairs": pair_stats["pairs"], "real_pairs_in_band": pair_stats["in_band"]},
        "geometry": {"annotators": ann.describe(), "cube_trim": cfg.cube_trim,
                     "cube": "axis-aligned box of the object's visible 3D points in the canonical frame",
                     "frame": "origin on the floor below the camera; x right, y up (fitted floor normal), z forward",
                     "floor_fit": {"views": len(fe),
                                   "max_angle_deg": round(float(fe[:, 0].max()), 5) if len(fe) else None,
                                   "max_height_err_m": round(float(fe[:, 1].max()), 5) if len(fe) else None}},
        "units": {"length": "meters, 3 decimals; centimeters (1 decimal) below 0.5 m",
                  "points": "normalised (x, y) in [0, 1]", "cube_centre": "meters, 3 decimals"},
        "tokenizer": {"path": "tokenizer", "vocab_size": len(tok), "sha256": tok_hash,
                      "special_tokens": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", IMAGE_TOKEN]},
        "config": {"cot": cfg.__dict__, "multiview": mvcfg.__dict__,
                   "multiview_per_scene": {str(k): v for k, v in p.multiview_per_scene.items()},
                   "captions_per_image": p.captions_per_image, "instruct_per_image": p.instruct_per_image,
                   "cot_per_image": p.cot_per_image},
    }



def to_conversation_pairs(qa: list[tuple[str, str]], image_token: str | None) -> list[dict]:
    conv = []
    for k, (q, a) in enumerate(qa):
        conv += [{"from": "human", "value": f"{image_token}\n{q}" if (k == 0 and image_token) else q},
                 {"from": "gpt", "value": a}]
    return conv
