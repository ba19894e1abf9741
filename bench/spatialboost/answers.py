"""Held-out answer metrics: does the VLM read the spatial language off an image better than a text-only prior?

Questions come from the synthetic scenes' **validation** split (never trained on), made by the same
generator as stage 3 (`data.cot.spatial_turns`). Two ways to ask them (`TrainConfig.answer_mode`):

- ``chain`` (default): each view's 12-turn chain in the training order (`cot.arrange`), as in stage 3,
  but every earlier answer in the conversation is the model's own (greedy), never the ground truth, so
  nothing is given away; every turn of a family below is scored.
- ``standalone``: one question per family and view, image + question alone (a shape the chains never
  train on: a chain always opens with a depth question).

    family        metric                                     text-only prior
    depth         |error| of the depth at a point (m)        median training depth
    closer        accuracy of "is P_A closer than P_B"       majority training answer
    cube_centre   L2 error of the object's cube centre (m)   per-coordinate median of training centres
    left_of       accuracy of "is A left of B"               majority training answer
    distance      |error| of the A-B distance (m)            median training distance

The prior is the best constant answer a model could learn from the training answers without looking
at the image (computed from the training scenes' questions, same generator). An answer that cannot
be parsed scores as the prior's answer would (never better), and the parse rate is reported.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

FAMILIES = ("depth", "closer", "cube_centre", "left_of", "distance")
NUMERIC = {"depth", "cube_centre", "distance"}
_LEN = re.compile(r"(-?\d+(?:\.\d+)?)\s*(centimeters|meters)")
_NUM = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Question:
    family: str
    image: Path
    question: str
    truth: object  # float (m) | bool | np.ndarray (3,); None for a turn that is asked but not scored
    chain: int = -1  # index of the view's chain (chain mode), -1 when asked standalone


def _truth(turn) -> object:
    f = turn.facts
    return {"depth": lambda: float(f["depth"]), "closer": lambda: bool(f["closer"]),
            "cube_centre": lambda: np.asarray(f["centre"], dtype=float), "left_of": lambda: bool(f["left"]),
            "distance": lambda: float(f["distance"])}[turn.family]()


def scene_questions(synth_root: Path, split: str, max_views: int, seed: int = 0, chains: bool = False,
                    order: str = "forward", levels=None) -> list[Question]:
    """Questions of up to `max_views` views of `split` ("val": held out, "train": the prior): one per family,
    or with `chains` every turn of each view's chain in `order` over `levels` (unscored turns: truth None)."""
    from bench.data.scenes import ViewGeometry, load_scene, load_synth_view
    from bench.spatialboost.data.cot import LEVELS, CotConfig, InsufficientContent, arrange, spatial_turns

    out: list[Question] = []
    views = 0
    for sd in sorted(p for p in (Path(synth_root) / "scenes").iterdir() if (p / "scene.json").is_file()):
        meta = load_scene(sd)
        if (meta.get("split") == "train") != (split == "train"):
            continue
        for cam in meta["cameras"]:
            if views >= max_views:
                return out
            view = load_synth_view(sd, cam, meta)
            rng = np.random.default_rng([seed, 7919, int(cam["index"]), len(out)])
            try:
                turns = spatial_turns(ViewGeometry.compute(view, rng), rng, CotConfig())
            except (InsufficientContent, ValueError):
                continue
            if chains:
                kept = arrange(turns, order, tuple(levels or LEVELS), np.random.default_rng([seed, 4, views]))
                out += [Question(t.family, view.image_path, t.question, _truth(t) if t.family in FAMILIES else None,
                                 chain=views) for t in kept]
                views += 1
                continue
            seen = set()
            for t in turns:
                if t.family in FAMILIES and t.family not in seen:
                    seen.add(t.family)
                    out.append(Question(t.family, view.image_path, t.question, _truth(t)))
            views += 1
    return out


def parse(family: str, text: str):
    """The value an answer states (None when it states none in the expected form)."""
    text = text.strip()
    if family in ("closer", "left_of"):
        low = text.lower()
        return True if low.startswith("yes") else False if low.startswith("no") else None
    if family == "cube_centre":
        nums = _NUM.findall(text.replace("3D", ""))
        return np.asarray([float(x) for x in nums[:3]]) if len(nums) >= 3 else None
    lengths = _LEN.findall(text)
    if not lengths:
        return None
    num, unit = lengths[-1]  # depth answers repeat the point's coordinates first (no unit)
    return float(num) / 100.0 if unit == "centimeters" else float(num)


def text_prior(train: list[Question]) -> dict[str, object]:
    prior: dict[str, object] = {}
    for fam in FAMILIES:
        vals = [q.truth for q in train if q.family == fam]
        if not vals:
            continue
        if fam in ("closer", "left_of"):
            prior[fam] = sum(vals) * 2 >= len(vals)
        elif fam == "cube_centre":
            prior[fam] = np.median(np.stack(vals), axis=0)
        else:
            prior[fam] = float(np.median(vals))
    return prior


def error(family: str, pred, truth) -> float:
    """Per-question score: |error| in metres (numeric families) or 1 - correct (yes/no families)."""
    if family == "cube_centre":
        return float(np.linalg.norm(np.asarray(pred) - np.asarray(truth)))
    if family in NUMERIC:
        return abs(float(pred) - float(truth))
    return 0.0 if bool(pred) == bool(truth) else 1.0


def metric_name(family: str) -> str:
    return f"{family}_{'abs_err_m' if family in NUMERIC else 'accuracy'}"


def summarise(questions: list[Question], answers: list[str], prior: dict[str, object]) -> dict[str, dict]:
    """family -> {model, prior, parsed, n} (accuracy for yes/no families, mean |error| otherwise)."""
    out = {}
    for fam in FAMILIES:
        idx = [i for i, q in enumerate(questions) if q.family == fam and q.truth is not None]
        if not idx or fam not in prior:
            continue
        model, base, parsed = [], [], 0
        for i in idx:
            value = parse(fam, answers[i])
            parsed += value is not None
            model.append(error(fam, value if value is not None else prior[fam], questions[i].truth))
            base.append(error(fam, prior[fam], questions[i].truth))
        flip = fam not in NUMERIC  # report accuracy, not error rate
        out[fam] = {"metric": metric_name(fam), "n": len(idx), "parsed": parsed / len(idx),
                    "model": 1 - float(np.mean(model)) if flip else float(np.mean(model)),
                    "prior": 1 - float(np.mean(base)) if flip else float(np.mean(base)),
                    "higher_is_better": flip}
        out[fam]["beats_prior"] = (out[fam]["model"] > out[fam]["prior"]) if flip else \
            (out[fam]["model"] < out[fam]["prior"])
    return out


def _generate(vlm, tokenizer, msgs: list[dict], visual, max_new_tokens: int, device) -> str:
    """Greedy continuation of a chat (stop at <|im_end|>) with the LLM's KV cache; `visual` = the
    conversation's image tokens (`vlm.visual_tokens`, encoded once per conversation)."""
    from bench.vlm.tokenizer import IM_END

    ids = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    stop = tokenizer.convert_tokens_to_ids(IM_END)
    t = torch.tensor([ids], device=device)
    emb, mask, _, pos = vlm.splice(t, torch.ones_like(t), None, visual, [1])
    embed = vlm.llm.get_input_embeddings()
    new: list[int] = []
    past = None
    for _ in range(max_new_tokens):
        step = vlm.llm(inputs_embeds=emb, attention_mask=mask, position_ids=pos, past_key_values=past, use_cache=True)
        past = step.past_key_values
        nxt = int(step.logits[0, -1].argmax())
        if nxt == stop:
            break
        new.append(nxt)
        emb = embed(torch.tensor([[nxt]], device=device))
        mask = torch.cat([mask, mask.new_ones(1, 1)], dim=1)
        pos = pos[:, -1:] + 1
    return tokenizer.decode(new, skip_special_tokens=True)


@torch.no_grad()
def answer(vlm, tokenizer, transform, questions: list[Question], max_new_tokens: int = 40,
           device: torch.device | str = "cpu") -> list[str]:
    """Greedy answers, one per question. Questions of one chain (same `chain` >= 0, consecutive) are one
    conversation: the image opens the first turn and each later turn follows the model's own answers."""
    from PIL import Image

    from bench.vlm.tokenizer import IMAGE_TOKEN

    was = vlm.llm.training
    vlm.llm.eval()
    out: list[str] = []
    msgs: list[dict] = []
    visual, current = None, None
    for q in questions:
        if q.chain < 0 or q.chain != current:  # a new conversation: its image is encoded once
            with Image.open(q.image) as im:
                visual = vlm.visual_tokens(transform(im.convert("RGB"))[None].to(device))
            msgs, current = [], (q.chain if q.chain >= 0 else None)
        content = q.question if msgs else f"{IMAGE_TOKEN}\n{q.question}"
        msgs.append({"role": "user", "content": content})
        text = _generate(vlm, tokenizer, msgs, visual, max_new_tokens, device)
        msgs.append({"role": "assistant", "content": text})
        out.append(text)
    vlm.llm.train(was)
    return out


__all__ = ["FAMILIES", "Question", "answer", "error", "metric_name", "parse", "scene_questions", "summarise",
           "text_prior"]


def evaluate_stage(trainer, stage: int) -> dict[str, dict]:
    """Answer metrics after `stage` on `cfg.answer_views` held-out views (logged as
    ``answers_stage{k}_{family}_{metric}`` and ``..._prior``); questions and prior are made once."""
    cfg = trainer.cfg
    if not getattr(trainer, "_answer_set", None):
        from bench.spatialboost.config import recipe_levels

        root = Path(trainer.recipe.manifest["synth"]["root"])
        prior = text_prior(scene_questions(root, "train", cfg.answer_prior_views, cfg.data_seed))
        chains = cfg.answer_mode == "chain"
        trainer._answer_set = (scene_questions(root, "val", cfg.answer_views, cfg.data_seed, chains=chains,
                                               order=cfg.order, levels=recipe_levels(cfg)), prior)
    questions, prior = trainer._answer_set
    answers = answer(trainer.vlm, trainer.tokenizer, trainer.transform, questions, device=trainer.device)
    result = summarise(questions, answers, prior)
    result["mode"] = cfg.answer_mode
    result["examples"] = [{"family": q.family, "question": q.question, "answer": a} for q, a in
                          list(zip(questions, answers))[:12]]
    if trainer.run is not None and trainer.env.is_main:
        metrics = {}
        for fam, r in result.items():
            if fam in FAMILIES:
                metrics[f"answers_stage{stage}_{r['metric']}"] = r["model"]
                metrics[f"answers_stage{stage}_{r['metric']}_prior"] = r["prior"]
                metrics[f"answers_stage{stage}_{fam}_parsed"] = r["parsed"]
        trainer.run.log_metrics(metrics)
    if cfg.progress and trainer.env.is_main:
        import sys

        line = ", ".join(f"{fam} {r['model']:.3f} (prior {r['prior']:.3f})" for fam, r in result.items()
                         if fam in FAMILIES)
        print(f"[sb] stage {stage} held-out answers: {line}", file=sys.stderr, flush=True)
    return result
