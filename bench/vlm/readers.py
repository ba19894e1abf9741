"""Readers of the VLM benchmarks in their native release formats -> `VQAItem`s (docs/vlm-eval.md).

    SpatialRGPT-Bench  SpatialRGPT-Bench_v1.json (+ images under the Omni3D datasets root)
    BLINK              HF parquet <root>/<Subtask>/<split>-*.parquet, or VisualSketchpad's
                       tasks/blink_depth/processed/<split>_Relative_Depth_N/{image.jpg,request.json}
    VQAv2              v2_OpenEnded_mscoco_<split>_questions.json + v2_mscoco_<split>_annotations.json + <split>/
    GQA                <split>_questions.json (e.g. testdev_balanced_questions.json) + images/<imageId>.jpg
    MMBench            mmbench_dev_*.tsv (index, question, hint, A-D, answer, category, base64 image)
    MME                MME_Benchmark_release_version/<subtask>/ (images/ + questions_answers_YN/, or flat)

The question text carries LLaVA-1.5's instruction suffix for the benchmark's type; the chat template
is added by the model (`bench.vlm.evaluate`). Every image is checked up front: a missing one is a
`DataError` naming the benchmark file, the record and the path.
"""
from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import DataError

SHORT_ANSWER = "\nAnswer the question using a single word or phrase."
MULTIPLE_CHOICE = "\nAnswer with the option's letter from the given choices directly."


@dataclass
class VQAItem:
    id: str
    question: str  # what the user turn says after the image (suffix included)
    answer: Any  # benchmark-specific ground truth
    image_path: Path | None = None
    image_bytes: bytes | None = None
    category: str = ""
    extra: dict = field(default_factory=dict)  # regions, choices, subtask, answer type ...

    def load_image(self):
        import io

        from PIL import Image

        try:
            src = io.BytesIO(self.image_bytes) if self.image_bytes is not None else self.image_path
            with Image.open(src) as im:
                return im.convert("RGB")
        except Exception as exc:  # noqa: BLE001 - one line naming the record and the file
            raise DataError(self.image_path or f"record {self.id}", f"unreadable image ({exc})") from None


def _json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(path, "benchmark file not found") from None
    except ValueError as exc:
        raise DataError(path, f"not valid JSON ({exc})") from None


def _need_image(item: VQAItem, source: Path) -> VQAItem:
    if item.image_path is not None and not item.image_path.is_file():
        raise DataError(item.image_path, f"image of record {item.id} in {source} is missing")
    return item


def _limit(seq: list, limit: int) -> list:
    """`limit` records evenly spaced over the file (all when 0), so a small run still spans its categories."""
    if not limit or limit <= 0 or limit >= len(seq):
        return list(seq)
    return [seq[(i * len(seq)) // limit] for i in range(limit)]


# ------------------------------------------------------------------------------ SpatialRGPT-Bench
def read_spatialrgpt(json_path: Path, image_root: Path, limit: int = 0) -> list[VQAItem]:
    records = _json(json_path)
    if not isinstance(records, list):
        raise DataError(json_path, "expected a JSON list of SpatialRGPT-Bench records")
    items = []
    for r in _limit(records, limit):
        try:
            conv = r["conversations"]
            gt = next(t["value"] for t in conv if t.get("from") == "gpt")
            qa = r["qa_info"]
            items.append(_need_image(VQAItem(
                str(r["id"]), r["text_q"], gt, Path(image_root) / r["image_info"]["file_path"],
                category=qa["category"],
                extra={"type": qa["type"], "bbox": r.get("bbox") or [], "rle": r.get("rle") or [],
                       "height": r["image_info"].get("height"), "width": r["image_info"].get("width")}), json_path))
        except (KeyError, TypeError, StopIteration) as exc:
            raise DataError(json_path, f"record {r.get('id', '?') if isinstance(r, dict) else '?'} lacks "
                                       f"field {exc} (expected the SpatialRGPT-Bench_v1.json layout)") from None
    return items


# ------------------------------------------------------------------------------------------ BLINK
def read_blink(root: Path, subtask: str = "Relative_Depth", split: str = "val", limit: int = 0) -> list[VQAItem]:
    """HF parquet when present, else VisualSketchpad's processed folders (checked against BLINK's
    eval/val_answers.json when that file is in `root`)."""
    root = Path(root)
    parquet = sorted((root / subtask).glob(f"{split}-*.parquet"))
    if parquet:
        return _limit(_blink_parquet(parquet), limit)
    sketch = root / "VisualSketchpad" / "tasks" / "blink_depth" / "processed"
    sketch = sketch if sketch.is_dir() else root / "tasks" / "blink_depth" / "processed"
    if subtask == "Relative_Depth" and sketch.is_dir() and any(sketch.glob(f"{split}_{subtask}_*")):
        return _limit(_blink_sketchpad(sketch, split, root), limit)
    raise DataError(root, f"no BLINK {subtask} {split} data: expected {root / subtask}/{split}-*.parquet "
                          f"(HF BLINK-Benchmark/BLINK) or {sketch}/{split}_{subtask}_N/")


def _blink_parquet(files: list[Path]) -> list[VQAItem]:
    import pandas as pd

    items = []
    for f in files:
        for r in pd.read_parquet(f).to_dict("records"):
            imgs = [r.get(f"image_{k}") for k in range(1, 5)]
            imgs = [i for i in imgs if isinstance(i, dict) and i.get("bytes")]
            if len(imgs) != 1:
                raise DataError(f, f"record {r.get('idx')}: {len(imgs)} images (this reader takes one-image subtasks)")
            items.append(VQAItem(str(r["idx"]), str(r["prompt"]), str(r["answer"]), image_bytes=imgs[0]["bytes"],
                                 category=str(r.get("sub_task", "")), extra={"choices": list(r["choices"])}))
    return items


def _blink_sketchpad(folder: Path, split: str, root: Path) -> list[VQAItem]:
    import re

    answers_file = next((p for p in (root / "BLINK_Benchmark" / "eval" / "val_answers.json",
                                     root / "eval" / "val_answers.json") if p.is_file()), None)
    official = _json(answers_file) if answers_file else {}
    dirs = sorted(folder.glob(f"{split}_Relative_Depth_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    items = []
    for d in dirs:
        req = _json(d / "request.json")
        prompt = re.sub(r"<img[^>]*>\s*", "", req["query"]).strip()
        choices = re.findall(r"^\([A-Z]\)\s*(.+)$", prompt, re.MULTILINE)
        if official and official.get(d.name, req["answer"]) != req["answer"]:
            raise DataError(d / "request.json", f"answer {req['answer']} disagrees with {answers_file}")
        items.append(_need_image(VQAItem(d.name, prompt, req["answer"], d / "image.jpg", category="Relative_Depth",
                                         extra={"choices": choices}), d / "request.json"))
    return items


# ------------------------------------------------------------------------------------------ VQAv2
def read_vqav2(root: Path, split: str = "val2014", limit: int = 0) -> list[VQAItem]:
    root = Path(root)
    qfile, afile = root / f"v2_OpenEnded_mscoco_{split}_questions.json", root / f"v2_mscoco_{split}_annotations.json"
    questions = _limit(_json(qfile)["questions"], limit)
    ann = {a["question_id"]: a for a in _json(afile)["annotations"]}
    items = []
    for q in questions:
        a = ann.get(q["question_id"])
        if a is None:
            raise DataError(afile, f"no annotation for question {q['question_id']}")
        img = root / split / f"COCO_{split}_{int(q['image_id']):012d}.jpg"
        items.append(_need_image(VQAItem(str(q["question_id"]), q["question"] + SHORT_ANSWER,
                                         [x["answer"] for x in a["answers"]], img, category=a.get("answer_type", "")),
                                 qfile))
    return items


# -------------------------------------------------------------------------------------------- GQA
def read_gqa(root: Path, split: str = "testdev_balanced", limit: int = 0) -> list[VQAItem]:
    root = Path(root)
    qfile = root / f"{split}_questions.json"
    data = _json(qfile)
    items = []
    for qid, q in _limit(list(data.items()), limit):
        img = root / "images" / f"{q['imageId']}.jpg"
        items.append(_need_image(VQAItem(str(qid), q["question"] + SHORT_ANSWER, q["answer"], img,
                                         category=q.get("types", {}).get("structural", "")), qfile))
    return items


# ---------------------------------------------------------------------------------------- MMBench
OPTIONS = ("A", "B", "C", "D")


def _present(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and str(v).strip() != "" \
        and str(v).lower() != "nan"


def mmbench_question(question: str, hint, options: list[str]) -> str:
    """LLaVA `model_vqa_mmbench.py`: hint, question, ``A. opt`` lines, the single-prediction suffix."""
    text = (f"{hint}\n{question}" if _present(hint) else question)
    for letter, opt in zip(OPTIONS, options):
        text += f"\n{letter}. {opt}"
    return text + MULTIPLE_CHOICE


def read_mmbench(tsv: Path, circular: bool = True, limit: int = 0) -> list[VQAItem]:
    """One item per (question, rotation). With `circular` and a file without circular copies (no
    index >= 1e6), the options are rotated here as LLaVA's ``--all-rounds`` does."""
    import pandas as pd

    try:
        df = pd.read_csv(tsv, sep="\t", dtype={"index": int})
    except FileNotFoundError:
        raise DataError(tsv, "benchmark file not found") from None
    missing = {"index", "question", "answer", "image", "A", "B"} - set(df.columns)
    if missing:
        raise DataError(tsv, f"not an MMBench TSV: columns {sorted(missing)} missing")
    rows = df.to_dict("records")[: limit or None]
    has_copies = any(int(r["index"]) >= 1_000_000 for r in rows)
    items = []
    for r in rows:
        if not _present(r.get("image")):
            raise DataError(tsv, f"record {r['index']} has no image")
        options = [str(r[o]) for o in OPTIONS if o in r and _present(r[o])]
        answer_i = OPTIONS.index(str(r["answer"]).strip())
        rounds = len(options) if circular and not has_copies else 1
        for k in range(rounds):
            opts = options[k:] + options[:k]
            idx = int(r["index"]) + k * 1_000_000
            items.append(VQAItem(str(idx), mmbench_question(str(r["question"]), r.get("hint"), opts),
                                 OPTIONS[(answer_i - k) % len(options)], image_bytes=base64.b64decode(r["image"]),
                                 category=str(r.get("category", "")), extra={"index": idx, "choices": opts}))
    return items


# -------------------------------------------------------------------------------------------- MME
IMAGE_EXT = (".jpg", ".png", ".jpeg")


def read_mme(root: Path, limit: int = 0) -> list[VQAItem]:
    """Every subtask folder of the release: ``<image stem>.txt`` holds one ``question<TAB>answer``
    line per question (a Yes and a No question per image); `limit` counts images."""
    root = Path(root)
    subs = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not subs:
        raise DataError(root, "no MME subtask folders (expected MME_Benchmark_release_version/<subtask>/)")
    items, n_images = [], 0
    for sub in subs:
        qa_dir = sub / "questions_answers_YN" if (sub / "questions_answers_YN").is_dir() else sub
        img_dir = sub / "images" if (sub / "images").is_dir() else sub
        for txt in sorted(qa_dir.glob("*.txt")):
            if limit and n_images >= limit:  # whole images only: acc+ needs both questions
                break
            n_images += 1
            img = next((img_dir / (txt.stem + e) for e in IMAGE_EXT if (img_dir / (txt.stem + e)).is_file()), None)
            if img is None:
                raise DataError(img_dir / (txt.stem + ".jpg"), f"image of {txt} is missing")
            for n, line in enumerate(t for t in txt.read_text().splitlines() if t.strip()):
                q, _, a = line.rpartition("\t")
                if a.strip() not in ("Yes", "No"):
                    raise DataError(txt, f"line {n + 1}: expected 'question<TAB>Yes|No'")
                items.append(VQAItem(f"{sub.name}/{txt.stem}/{n}", q.strip() + SHORT_ANSWER, a.strip(), img,
                                     category=sub.name, extra={"image_id": f"{sub.name}/{txt.stem}"}))
    return items


__all__ = ["MULTIPLE_CHOICE", "SHORT_ANSWER", "VQAItem", "mmbench_question", "read_blink", "read_gqa", "read_mmbench",
           "read_mme", "read_spatialrgpt", "read_vqav2"]
