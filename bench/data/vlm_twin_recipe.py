"""A SpatialBoost recipe whose stage 2 also holds benchmark-format questions from the *train* scenes.

LLaVA-1.5's instruction mixture contains VQAv2/GQA-style short answers and region questions; the
project's stage-2 recipe does not, so a toy LLM trained on it never learns to answer "in a single
word", to name a region or an option letter, and scores 0 on the twins whatever its encoder. This
builds a copy of a recipe with, appended to stage 2, the twin generators' questions asked about the
train scenes (regions drawn as boxes, two circled points, colours/existence/counts; the twins
themselves come from the val scenes only), for `bench sb train --recipe DIR` (docs/vlm-eval.md):

    from bench.data.vlm_twin_recipe import build_skills_recipe
    root = build_skills_recipe(build_recipe("tiny"), preset="tiny")
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from bench.io import atomic_path

SKILLS_VERSION = 1


def skills_samples(synth: Path, image_root: Path, seed: int = 1) -> list[dict]:
    """LLaVA conversations (one question each) from the train scenes; images written under image_root."""
    from bench.data.vlm_twins import View3D, _scene_views, depth_records, general_records, spatial_records
    from bench.vlm.readers import SHORT_ANSWER
    from bench.vlm.regions import draw_regions

    rng = np.random.default_rng(seed)
    out: list[dict] = []
    for n, (sd, meta, cam) in enumerate(_scene_views(synth, "train")):
        view = View3D.of(sd, meta, cam)
        stem = f"{meta['scene_id']}_{cam['index']}"
        from PIL import Image

        with Image.open(view.image) as im:
            base = im.convert("RGB")
        for r in spatial_records(view, f"{meta['scene_id']}/{cam['index']}.jpg", rng, first_category=n):
            rel = f"vlm_skills/regions/{r['id']}.jpg"
            _save(draw_regions(base, r["bbox"], r["rle"], "boxes"), image_root / rel)
            out.append(_sample(r["id"], rel, r["text_q"], r["conversations"][1]["value"]))
        for r in depth_records(view, rng, len(out)):
            rel = f"vlm_skills/points/{stem}_{r['idx']}.jpg"
            (image_root / rel).parent.mkdir(parents=True, exist_ok=True)
            (image_root / rel).write_bytes(r["image_1"]["bytes"])
            out.append(_sample(f"{stem}_{r['idx']}", rel, r["prompt"], r["answer"]))
        rel = f"vlm_skills/plain/{stem}.jpg"
        _save(base, image_root / rel)
        qs, anns = general_records(view, 1 + n, rng, 0)
        for q, a in zip(qs, anns):
            out.append(_sample(f"{stem}_q{q['question_id']}", rel, q["question"] + SHORT_ANSWER,
                               a["multiple_choice_answer"]))
    return out


def _sample(sid: str, rel: str, question: str, answer: str) -> dict:
    return {"id": f"skills_{sid}", "image": rel,
            "conversations": [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]}


def _save(image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        image.save(tmp, format="JPEG", quality=95)


def build_skills_recipe(recipe, preset: str = "tiny", out: Path | None = None, seed: int = 1) -> Path:
    """A copy of `recipe` (stage 1, stage 3, tokenizer and images linked) with the skills appended to
    stage 2; returns its root (a recipe folder: `load_recipe` reads it; its manifest hash is new)."""
    from bench.data.synth import ensure
    from bench.paths import bench_home
    from bench.vlm.llava import read_llava, write_llava

    m = recipe.manifest
    out = Path(out or bench_home() / "data" / f"{recipe.root.name}-vlm-skills")
    if (out / "manifest.json").is_file():
        return out
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    for entry in recipe.image_root.iterdir():  # the base recipe's images, linked
        link = images / entry.name
        if not link.exists():
            os.symlink(entry.resolve(), link)
    for name in ("tokenizer",):
        if not (out / name).exists():
            os.symlink(recipe.tokenizer_dir.resolve(), out / name)
    synth = Path(ensure(preset, progress=False))
    skills = skills_samples(synth, images, seed)
    stage2 = read_llava(recipe.stage2) + skills
    write_llava(out / "stage2_instruct.json", stage2, images)
    files = {}
    for stage, src in (("stage1", recipe.stage1), ("stage3", recipe.stage3)):
        dst = out / src.name
        if not dst.exists():
            os.symlink(src.resolve(), dst)
        files[stage] = {**m["files"][stage], "path": src.name}
    files["stage2"] = {"path": "stage2_instruct.json", "samples": len(stage2),
                       "sha256": hashlib.sha256((out / "stage2_instruct.json").read_bytes()).hexdigest()}
    manifest = {**m, "files": files, "image_root": "images", "tokenizer": {**m["tokenizer"], "path": "tokenizer"},
                "vlm_skills": {"version": SKILLS_VERSION, "samples": len(skills), "seed": seed,
                               "base_manifest": recipe.manifest_hash, "generator": "bench.data.vlm_twin_recipe"}}
    with atomic_path(out / "manifest.json") as tmp:  # last: a manifest means a complete recipe
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str) + "\n")
    return out


__all__ = ["SKILLS_VERSION", "build_skills_recipe", "skills_samples"]
