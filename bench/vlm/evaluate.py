"""Run one benchmark through a VLM: prepare each image (regions drawn for SpatialRGPT-Bench), answer
in batches, keep every answer, score (`bench.vlm.benchmarks`).

Answers are appended to a JSON-lines file as each batch finishes (LLaVA's answers format:
``question_id``, ``prompt``, ``text``, ``answer_id``, ``model_id``, ``metadata``), so an interrupted
evaluation resumes where it stopped; the scored file adds ``gt``, ``category`` and the verdict.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.io import atomic_path
from bench.vlm.benchmarks import score
from bench.vlm.readers import VQAItem
from bench.vlm.regions import draw_regions


@dataclass
class Outcome:
    metrics: dict[str, float]
    breakdown: dict[str, dict[str, float]]
    rows: list[dict[str, Any]]  # one scored answer per item


def prepared_image(kind: str, item: VQAItem, region_prompt: str = "boxes"):
    im = item.load_image()
    if kind == "spatialrgpt":
        return draw_regions(im, item.extra.get("bbox", []), item.extra.get("rle", []), region_prompt)
    return im


def _read_answers(path: Path | None) -> dict[str, dict]:
    if path is None or not path.is_file():
        return {}
    done = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:  # a line cut by a kill: answered again
            continue
        done[rec["question_id"]] = rec
    return done


def answer_all(kind: str, vlm, items: list[VQAItem], *, max_new_tokens: int, batch_size: int,
               region_prompt: str = "boxes", text_only: bool = False, answers_path: Path | None = None,
               progress: bool = True) -> list[str]:
    """Every item's answer (resuming from `answers_path`, appended to it batch by batch)."""
    from tqdm.auto import tqdm

    done = _read_answers(answers_path)
    todo = [it for it in items if it.id not in done]
    if answers_path is not None:
        answers_path.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=f"{kind}{' (text only)' if text_only else ''}",
               unit="q", disable=not progress)
    model_id = getattr(vlm, "name", "vlm")
    for s in range(0, len(todo), max(1, batch_size)):
        chunk = todo[s:s + batch_size]
        images = [None] * len(chunk) if text_only else [prepared_image(kind, it, region_prompt) for it in chunk]
        texts = vlm.answer(images, [it.question for it in chunk], max_new_tokens)
        lines = []
        for it, text in zip(chunk, texts):
            rec = {"question_id": it.id, "prompt": it.question, "text": text, "model_id": model_id,
                   "answer_id": hashlib.sha1(f"{model_id}/{it.id}/{text}".encode()).hexdigest()[:22],
                   "metadata": {"category": it.category, "text_only": text_only}}
            done[it.id] = rec
            lines.append(json.dumps(rec))
        if answers_path is not None:
            with open(answers_path, "a") as f:
                f.write("\n".join(lines) + "\n")
        bar.update(len(chunk))
    bar.close()
    return [done[it.id]["text"] for it in items]


def evaluate(kind: str, vlm, items: list[VQAItem], *, max_new_tokens: int = 128, batch_size: int = 16,
             region_prompt: str = "boxes", headline: str = "quantitative", text_only_baseline: bool = False,
             state: Path | None = None, progress: bool = True) -> Outcome:
    """Answers, scores, and (optionally) the same model's text-only answers as a reference."""
    if not items:
        raise ValueError(f"{kind}: no items to evaluate")
    answers = answer_all(kind, vlm, items, max_new_tokens=max_new_tokens, batch_size=batch_size,
                         region_prompt=region_prompt, answers_path=state / "answers.partial.jsonl" if state else None,
                         progress=progress)
    metrics, breakdown, verdicts = score(kind, items, answers, headline=headline)
    if text_only_baseline:
        blind = answer_all(kind, vlm, items, max_new_tokens=max_new_tokens, batch_size=batch_size, text_only=True,
                           answers_path=state / "answers_text_only.partial.jsonl" if state else None,
                           progress=progress)
        metrics["text_only"] = score(kind, items, blind, headline=headline)[0]["accuracy" if "accuracy" in metrics
                                                                              else "score"]
    rows = []
    for it, text, verdict in zip(items, answers, verdicts):
        gt = it.answer if isinstance(it.answer, (str, int, float)) else list(it.answer)
        rows.append({"question_id": it.id, "prompt": it.question, "text": text, "gt": gt, "category": it.category,
                     "model_id": getattr(vlm, "name", "vlm"), **verdict})
    return Outcome(metrics, breakdown, rows)


def write_rows(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))


__all__ = ["Outcome", "answer_all", "evaluate", "prepared_image", "write_rows"]
