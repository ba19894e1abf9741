"""ScanRefer, ScanQA and SQA3D annotation readers (the released JSON formats; shared/docs/lexicon3d.md §1.4).

    scanrefer/ScanRefer_filtered_<split>.json    [{scene_id, object_id (str), object_name, ann_id, description, token}]
    scanqa/ScanQA_v1.0_<split>.json              [{answers, object_ids, object_names, question, question_id, scene_id}]
    sqa3d/SQA_<split>.json                       ScanQA format made by SQA3D's utils/sqa_data_2_ScanQA.py, or
    sqa3d/sqa_task/balanced/v1_balanced_{questions,sqa_annotations}_<split>_scannetv2.json (converted here the same way)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import DataError


@dataclass(frozen=True)
class Referral:
    scene_id: str
    object_id: int
    object_name: str
    ann_id: str
    description: str


@dataclass(frozen=True)
class QAItem:
    question_id: str
    scene_id: str
    question: str
    answers: tuple[str, ...]
    object_ids: tuple[int, ...] = ()
    situation: str = ""  # SQA3D only; Lexicon3D does not feed it (quirk 6)
    extra: dict = field(default_factory=dict, compare=False)


def _load_list(path: Path, keys: tuple[str, ...]) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "annotation file not found")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(path, f"not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON list of records, got {type(data).__name__}")
    for i, rec in enumerate(data):
        missing = [k for k in keys if not isinstance(rec, dict) or k not in rec]
        if missing:
            raise DataError(path, f"record {i} lacks {missing}")
    return data


def read_scanrefer(path: Path) -> list[Referral]:
    recs = _load_list(path, ("scene_id", "object_id", "object_name", "ann_id", "description"))
    return [Referral(r["scene_id"], int(r["object_id"]), r["object_name"], str(r["ann_id"]), r["description"])
            for r in recs]


def read_scanqa(path: Path) -> list[QAItem]:
    recs = _load_list(path, ("question", "question_id", "scene_id"))
    return [QAItem(str(r["question_id"]), r["scene_id"], r["question"], tuple(r.get("answers") or ()),
                   tuple(int(o) for o in r.get("object_ids") or ()), r.get("situation", ""))
            for r in recs]


def read_sqa3d_balanced(questions: Path, annotations: Path, answer_vocab: set[str] | None = None) -> list[QAItem]:
    """SQA3D's balanced release -> ScanQA-style items as `sqa_data_2_ScanQA.py` does: one answer each
    ("unknown" when not in the answer vocabulary, if one is given), no object ids, situation kept aside."""
    def load(p: Path, key: str) -> list[dict]:
        try:
            return json.loads(Path(p).read_text())[key]
        except FileNotFoundError:
            raise DataError(p, "annotation file not found") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(p, f"not an SQA3D {key} file ({exc})") from None

    qs = load(questions, "questions")
    ann = {a["question_id"]: a for a in load(annotations, "annotations")}
    out = []
    for q in qs:
        a = ann.get(q["question_id"])
        if a is None:
            raise DataError(annotations, f"no annotation for question {q['question_id']}")
        ans = a["answers"][0]["answer"]
        if answer_vocab is not None and ans not in answer_vocab:
            ans = "unknown"
        out.append(QAItem(str(q["question_id"]), q["scene_id"], q["question"], (ans,), (), q.get("situation", ""),
                          {"position": a.get("position"), "rotation": a.get("rotation")}))
    return out


def read_sqa3d(root: Path, split: str) -> list[QAItem]:
    """SQA_<split>.json when converted, else the balanced release files."""
    root = Path(root)
    conv = root / f"SQA_{split}.json"
    if conv.exists():
        return read_scanqa(conv)
    bal = root / "sqa_task" / "balanced"
    return read_sqa3d_balanced(bal / f"v1_balanced_questions_{split}_scannetv2.json",
                               bal / f"v1_balanced_sqa_annotations_{split}_scannetv2.json")


__all__ = ["QAItem", "Referral", "read_scanqa", "read_scanrefer", "read_sqa3d", "read_sqa3d_balanced"]
