"""Synthetic twins of the VLM benchmarks, written in the benchmarks' own release formats from the
val scenes of the scene generator (exact geometry, so every answer is known in metres):

    spatialrgpt/  SpatialRGPT-Bench_v1.json + images/: questions about two marked regions (bbox + COCO
                  RLE), all 24 categories; distances and sizes written in m / cm / in / ft
    blink/        Relative_Depth/val-00000-of-00001.parquet (the HF BLINK layout): two circled points
                  labelled A and B, "which point is closer to the camera?"
    vqav2/        v2_OpenEnded_mscoco_val2014_{questions,annotations}.json + val2014/: colours,
                  existence and counts of objects (10 identical human answers)

Built once per synthetic preset under BENCH_HOME/data/vlm-twins-<preset>/ (manifest last, so a
manifest means complete data); `bench.data.vlm_twin_source.TwinData` is the tasks' data source (it passes the folder in). Our own template wording
(docs/vlm-eval.md §4.4). Region metrics: centres and sizes of the objects' true 3D boxes (world z up);
left/right and front/behind in the camera frame; directions as clock hours in the floor plane with
12 o'clock = the viewer's forward direction.
"""
from __future__ import annotations

import fcntl
import io
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.io import atomic_path, write_json

VERSION = 3
LAYOUTS = ("spatialrgpt", "blink", "vqav2")
MIN_VISIBILITY, MIN_PIXELS = 0.5, 1500  # a region must be clearly visible to be asked about
# sizes (the tiny preset stays below them): BLINK Relative_Depth val has 124 items; SpatialRGPT-Bench ~59 per
# category, capped lower here so that `bench run --tasks all` stays minutes on a CPU
MAX_PER_CATEGORY, MAX_DEPTH, MAX_GENERAL = 12, 124, 240
UNITS = (("m", 1.0, "{:.2f} meters"), ("cm", 0.01, "{:.0f} centimeters"), ("in", 0.0254, "{:.1f} inches"),
         ("ft", 0.3048, "{:.1f} feet"))


# ------------------------------------------------------------------------------------------ build
def build_twins(preset: str, out: Path, progress: bool = True, seed: int = 0) -> Path:
    """Writes the twins of `preset` into `out` (`TwinData` says where). Idempotent: returns at once when
    the manifest names the same scenes, version and seed."""
    from bench.data.synth import ensure

    synth = Path(ensure(preset, progress=progress))
    content = json.loads((synth / "manifest.json").read_text()).get("content_hash")
    out = Path(out)
    key = {"version": VERSION, "seed": seed, "synth_content_hash": content}
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        mf = out / "manifest.json"
        if mf.is_file() and json.loads(mf.read_text()).get("key") == key:
            return out
        mf.unlink(missing_ok=True)
        for layout in LAYOUTS:
            shutil.rmtree(out / layout, ignore_errors=True)
        counts = _build(synth, out, np.random.default_rng(seed), progress)
        write_json(mf, {"key": key, "counts": counts, "generator": "bench.data.vlm_twins"})
    return out


def _scene_views(synth: Path, split: str = "val"):
    from bench.data.scenes import load_scene

    for sd in sorted((synth / "scenes").iterdir()):
        if (sd / "scene.json").is_file():
            meta = load_scene(sd)
            if meta.get("split") == split:
                for cam in meta["cameras"]:
                    yield sd, meta, cam


def _build(synth: Path, out: Path, rng: np.random.Generator, progress: bool) -> dict[str, int]:
    from tqdm.auto import tqdm

    views = list(_scene_views(synth, "val"))
    if not views:
        raise RuntimeError(f"no val scenes under {synth / 'scenes'}: the twins are made from val scenes only")
    from collections import Counter

    srgpt, blink, vqa_q, vqa_a = [], [], [], []
    per_category: Counter = Counter()
    for n, (sd, meta, cam) in enumerate(tqdm(views, desc="vlm twins", unit="view", disable=not progress)):
        view = View3D.of(sd, meta, cam)
        rel = f"synthetic/{meta['scene_id']}/{cam['index']}.jpg"
        new = [r for r in spatial_records(view, rel, rng, first_category=n)
               if per_category[r["qa_info"]["category"]] < MAX_PER_CATEGORY]
        if new:
            _copy(sd / cam["color"], out / "spatialrgpt" / "images" / rel)
            per_category.update(r["qa_info"]["category"] for r in new)
            srgpt += new
        if len(blink) < MAX_DEPTH:
            blink += depth_records(view, rng, len(blink))[: MAX_DEPTH - len(blink)]
        if len(vqa_q) < MAX_GENERAL:
            image_id = 1 + n
            q, a = general_records(view, image_id, rng, len(vqa_q))
            if q:
                _copy(sd / cam["color"], out / "vqav2" / "val2014" / f"COCO_val2014_{image_id:012d}.jpg")
                vqa_q += q
                vqa_a += a
    with atomic_path(out / "spatialrgpt" / "SpatialRGPT-Bench_v1.json") as tmp:
        tmp.write_text(json.dumps(srgpt, indent=1))
    _write_blink(out / "blink" / "Relative_Depth" / "val-00000-of-00001.parquet", blink)
    write_json(out / "vqav2" / "v2_OpenEnded_mscoco_val2014_questions.json",
               {"data_subtype": "val2014", "task_type": "Open-Ended", "questions": vqa_q})
    write_json(out / "vqav2" / "v2_mscoco_val2014_annotations.json", {"data_subtype": "val2014", "annotations": vqa_a})
    return {"spatialrgpt": len(srgpt), "blink": len(blink), "vqav2": len(vqa_q), "views": len(views)}


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


# ------------------------------------------------------------------------------------------ views
@dataclass
class View3D:
    """What the questions need of one view: objects (world boxes), pixels, pose, instance mask."""

    image: Path
    size: tuple[int, int]  # (W, H)
    objects: dict[int, dict]  # instance id -> scene.json object + "visible" entry
    instance: np.ndarray
    depth: np.ndarray
    world_to_cam: np.ndarray
    present: tuple[str, ...] = ()  # categories of every object with a visible pixel (partly hidden ones too)

    @classmethod
    def of(cls, sd: Path, meta: dict, cam: dict) -> "View3D":
        from PIL import Image

        with Image.open(sd / cam["instance"]) as im:
            inst = np.array(im).astype(np.int32)
        with Image.open(sd / cam["depth"]) as im:
            depth = np.array(im).astype(np.float32) / float(meta.get("depth_scale", 1000))
        objs = {o["instance_id"]: o for o in meta["objects"]}
        visible = {}
        for v in cam.get("visible", []):
            o = objs.get(v["instance_id"])
            if o is not None and v["visibility"] >= MIN_VISIBILITY and v["pixels"] >= MIN_PIXELS:
                visible[v["instance_id"]] = {**o, "visible": v}
        present = tuple(objs[v["instance_id"]]["category"] for v in cam.get("visible", [])
                        if v["instance_id"] in objs and v["pixels"] > 0)
        c2w = np.asarray(cam["camera_to_world"], float)
        return cls(sd / cam["color"], (inst.shape[1], inst.shape[0]), visible, inst, depth, np.linalg.inv(c2w), present)

    def cam(self, p: np.ndarray) -> np.ndarray:
        return self.world_to_cam[:3, :3] @ p + self.world_to_cam[:3, 3]

    def floor_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """The viewer's forward and right directions in the (world) floor plane."""
        R = np.linalg.inv(self.world_to_cam)[:3, :3]
        f, r = R[:, 2].copy(), R[:, 0].copy()
        f[2] = r[2] = 0.0
        return f / np.linalg.norm(f), r / np.linalg.norm(r)


def _centre(o) -> np.ndarray:
    return np.asarray(o["box"]["centre"], float)


def _width(o) -> float:
    return float(max(o["box"]["size"][0], o["box"]["size"][1]))


def _height(o) -> float:
    return float(o["box"]["size"][2])


def _volume(o) -> float:
    return float(np.prod(o["box"]["size"]))


def fmt_quantity(metres: float, rng: np.random.Generator) -> str:
    _, factor, fmt = UNITS[int(rng.integers(len(UNITS)))]
    return fmt.format(metres / factor)


def clock_hour(view: View3D, a: dict, b: dict) -> int:
    f, r = view.floor_axes()
    d = _centre(b) - _centre(a)
    angle = math.degrees(math.atan2(float(d @ r), float(d @ f))) % 360.0
    hour = int(round(angle / 30.0)) % 12
    return 12 if hour == 0 else hour


# ------------------------------------------------------------------------------- SpatialRGPT twin
def _relations(view: View3D, a: dict, b: dict) -> dict[str, bool | None]:
    """Which relations hold for (A, B); None where the pair is too close to call."""
    ca, cb = view.cam(_centre(a)), view.cam(_centre(b))

    def cmp(x: float, y: float, margin: float, ratio: bool = False) -> bool | None:
        if ratio:
            return None if max(x, y) < 1.25 * min(x, y) else x > y
        return None if abs(x - y) < margin else x > y

    right = cmp(ca[0], cb[0], 0.15)
    above = cmp(_centre(a)[2], _centre(b)[2], 0.15)
    behind = cmp(ca[2], cb[2], 0.3)
    big = cmp(_volume(a), _volume(b), 0, True)
    tall = cmp(_height(a), _height(b), 0, True)
    wide = cmp(_width(a), _width(b), 0, True)

    def neg(v):
        return None if v is None else not v

    return {"left": neg(right), "right": right, "above": above, "below": neg(above), "behind": behind,
            "front": neg(behind), "big": big, "small": neg(big), "tall": tall, "short": neg(tall), "wide": wide,
            "thin": neg(wide)}


PHRASE = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below",
          "behind": "behind", "front": "in front of", "big": "bigger than", "small": "smaller than",
          "tall": "taller than", "short": "shorter than", "wide": "wider than", "thin": "thinner than"}
ANTONYM = {"left": "right", "right": "left", "above": "below", "below": "above", "behind": "front", "front": "behind",
           "big": "small", "small": "big", "tall": "short", "short": "tall", "wide": "thin", "thin": "wide"}
CHOICE_WORD = {"left": "more to the left", "right": "more to the right", "above": "higher", "below": "lower",
               "tall": "taller", "short": "shorter"}


def _qa(category: str, view: View3D, a: dict, b: dict, rng: np.random.Generator) -> tuple[str, str] | None:
    A, B = "Region [0]", "Region [1]"
    rel = _relations(view, a, b)
    if category.endswith("_predicate"):
        r = category.split("_")[0]
        holds = rel[r]
        if holds is None:
            return None
        q = f"Is {A} {PHRASE[r]} {B}?"
        ans = (f"Yes, {A} is {PHRASE[r]} {B}." if holds else
               [f"No, {A} is not {PHRASE[r]} {B}.", f"No, {A} is {PHRASE[ANTONYM[r]]} {B}."][int(rng.integers(2))])
        return q, ans
    if category.endswith("_choice"):
        r = category.split("_")[0]
        holds = rel[r]
        if holds is None:
            return None
        win = A if holds else B
        return f"Which is {CHOICE_WORD[r]}, {A} or {B}?", f"{win} is {CHOICE_WORD[r]}."
    ca, cb = _centre(a), _centre(b)
    if category == "direction":
        return (f"If you are at {A}, where will you find {B}?",
                f"{B} is roughly at {clock_hour(view, a, b)} o'clock from {A}.")
    if category == "distance_data":
        d, q = float(np.linalg.norm(ca - cb)), f"How far apart are {A} and {B}?"
        return q, f"{A} and {B} are {fmt_quantity(d, rng)} apart."
    if category == "horizontal_distance_data":
        d = float(np.linalg.norm((ca - cb)[:2]))
        return f"What is the horizontal distance between {A} and {B}?", f"They are {fmt_quantity(d, rng)} apart horizontally."
    if category == "vertical_distance_data":
        d = abs(float(ca[2] - cb[2]))
        if d < 0.05:
            return None
        return f"How far apart are {A} and {B} vertically?", f"They are {fmt_quantity(d, rng)} apart vertically."
    if category == "width_data":
        return f"How wide is {A}?", f"{A} is {fmt_quantity(_width(a), rng)} wide."
    if category == "height_data":
        return f"How tall is {A}?", f"{A} is {fmt_quantity(_height(a), rng)} tall."
    raise ValueError(category)


def spatial_records(view: View3D, rel_path: str, rng: np.random.Generator, first_category: int = 0,
                    per_view: int = 12) -> list[dict]:
    """Up to `per_view` records, categories taken in turn (offset per view so all 24 get covered)."""
    from bench.vlm.regions import rle_encode
    from bench.vlm.spatial_scoring import CATEGORIES, QUALITATIVE

    ids = sorted(view.objects)
    if len(ids) < 2:
        return []
    out = []
    W, H = view.size
    for k in range(len(CATEGORIES)):
        if len(out) >= per_view:
            break
        category = CATEGORIES[(first_category * per_view + k) % len(CATEGORIES)]
        i, j = rng.choice(len(ids), size=2, replace=False)
        a, b = view.objects[ids[i]], view.objects[ids[j]]
        qa = _qa(category, view, a, b, rng)
        if qa is None:
            continue
        q, ans = qa
        boxes = [[float(x) for x in o["visible"]["bbox"]] for o in (a, b)]
        rles = [rle_encode(view.instance == o["instance_id"]) for o in (a, b)]
        out.append({
            "id": f"{Path(rel_path).parent.name}_{Path(rel_path).stem}_{category}",
            "image_info": {"file_path": rel_path, "height": H, "width": W},
            "text_q": q,
            "conversations": [{"from": "human", "value": q.replace("Region [0]", "<mask>").replace("Region [1]", "<mask>")},
                              {"from": "gpt", "value": ans}],
            "bbox": boxes, "rle": rles,
            "qa_info": {"type": "qualitative" if category in QUALITATIVE else "quantitative", "category": category}})
    return out


# ------------------------------------------------------------------------------------- BLINK twin
BLINK_PROMPT = ("Two points are circled on the image, labeled by A and B beside each circle. Which point is closer to "
                "the camera?\nSelect from the following choices.\n(A) A is closer\n(B) B is closer")


def depth_records(view: View3D, rng: np.random.Generator, start: int, per_view: int = 2) -> list[dict]:
    """Two points on different objects (or object vs background) whose depths differ by >= 25%."""
    from PIL import Image, ImageDraw

    H, W = view.depth.shape
    out = []
    for _ in range(per_view * 20):
        if len(out) >= per_view:
            break
        v, u = rng.integers(20, H - 20, size=2), rng.integers(20, W - 20, size=2)
        d = view.depth[v, u]
        if (d <= 0).any() or view.instance[v[0], u[0]] == view.instance[v[1], u[1]] or max(d) < 1.25 * min(d) \
                or math.hypot(float(u[0] - u[1]), float(v[0] - v[1])) < 60:
            continue
        closer_first = (start + len(out)) % 2 == 0  # balanced answers
        order = (0, 1) if (d[0] < d[1]) == closer_first else (1, 0)
        with Image.open(view.image) as im:
            im = im.convert("RGB")
        draw = ImageDraw.Draw(im)
        for label, k in zip("AB", order):
            x, y = float(u[k]), float(v[k])
            draw.ellipse([x - 8, y - 8, x + 8, y + 8], outline=(255, 0, 0), width=3)
            draw.text((x + 11, y - 6), label, fill=(255, 0, 0))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=95)
        idx = f"val_Relative_Depth_{start + len(out) + 1}"
        out.append({"idx": idx, "question": "Which point is closer to the camera?", "sub_task": "Relative_Depth",
                    "image_1": {"bytes": buf.getvalue(), "path": f"{idx}.jpg"}, "image_2": None, "image_3": None,
                    "image_4": None, "choices": ["A is closer", "B is closer"],
                    "answer": "(A)" if closer_first else "(B)", "prompt": BLINK_PROMPT,
                    "explanation": f"depths {float(d[order[0]]):.3f} m (A) and {float(d[order[1]]):.3f} m (B)"})
    return out


def _write_blink(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)


# ------------------------------------------------------------------------------------- VQAv2 twin
def _plural(word: str) -> str:
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


def general_records(view: View3D, image_id: int, rng: np.random.Generator, start: int) -> tuple[list, list]:
    """Colour of a category present once, existence (yes and no), count of a category whose every
    instance in the view is clearly visible (a half-hidden one would make the count ambiguous)."""
    from bench.data.synth.catalog import CATEGORY_NAMES

    cats = [o["category"] for o in view.objects.values()]  # clearly visible
    qa: list[tuple[str, str, str]] = []
    once = sorted({c for c in cats if view.present.count(c) == 1})
    for c in once[:2]:
        o = next(o for o in view.objects.values() if o["category"] == c)
        if o.get("colour"):
            qa.append((f"What color is the {c}?", o["colour"], "other"))
    if cats:
        c = cats[int(rng.integers(len(cats)))]
        qa.append((f"Is there a {c} in the image?", "yes", "yes/no"))
        countable = sorted({c for c in cats if cats.count(c) == view.present.count(c)})
        if countable:
            c = countable[int(rng.integers(len(countable)))]
            qa.append((f"How many {_plural(c)} are there in the image?", str(cats.count(c)), "number"))
    absent = [c for c in CATEGORY_NAMES if c not in view.present]
    if absent:
        qa.append((f"Is there a {absent[int(rng.integers(len(absent)))]} in the image?", "no", "yes/no"))
    questions, annotations = [], []
    for k, (q, a, kind) in enumerate(qa):
        qid = image_id * 1000 + k
        questions.append({"image_id": image_id, "question": q, "question_id": qid})
        annotations.append({"question_id": qid, "image_id": image_id, "answer_type": kind,
                            "question_type": " ".join(q.split()[:3]).lower(), "multiple_choice_answer": a,
                            "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i in range(10)]})
    return questions, annotations


__all__ = ["LAYOUTS", "VERSION", "build_twins", "clock_hour"]
