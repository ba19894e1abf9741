"""Score a VLM's answers per benchmark (official metrics, judge-free) and the reference baselines.

`score(kind, items, answers, **opts)` -> (metrics, breakdown, per-answer verdicts). Kinds:
``spatialrgpt`` ``blink`` ``vqav2`` ``gqa`` ``mmbench`` ``mme``. Besides the model's numbers each
kind reports ``majority``: the same metric for the best constant answer per category (the most
common ground truth: "Yes", "(A)", the commonest VQA answer of an answer type; for distances and
sizes the category's median ground truth), the floor a VLM that ignores the image can reach.
Pure Python (no torch).
"""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict

from bench.vlm import spatial_scoring as sp
from bench.vlm import vqa_metrics as vq
from bench.vlm.readers import VQAItem

KINDS = ("spatialrgpt", "blink", "vqav2", "gqa", "mmbench", "mme")
HEADLINES = ("quantitative", "qualitative", "mean")  # which SpatialRGPT number is "accuracy"


def score(kind: str, items: list[VQAItem], answers: list[str], headline: str = "quantitative"):
    if len(items) != len(answers):
        raise ValueError(f"{len(items)} items but {len(answers)} answers")
    if kind not in KINDS:
        raise ValueError(f"unknown benchmark kind {kind!r}; known: {', '.join(KINDS)}")
    return globals()[f"_{kind}"](items, answers, headline)


def _pct(xs) -> float:
    xs = list(xs)
    return 100.0 * sum(xs) / len(xs) if xs else float("nan")


# -------------------------------------------------------------------------------- SpatialRGPT
def _spatial_majority(items: list[VQAItem]) -> float:
    """Micro-average over items of the best constant answer of each category (headline-agnostic)."""
    by_cat: dict[str, list[VQAItem]] = defaultdict(list)
    for it in items:
        by_cat[it.category].append(it)
    hits = 0
    for cat, its in by_cat.items():
        if cat in sp.QUANTITATIVE and cat != "direction":
            g = [sp.parse_metres(i.answer) for i in its]
            med = statistics.median(g)
            hits += sum(abs(med - x) <= sp.REL_TOL * x for x in g)
        elif cat == "direction":
            g = [sp.parse_clock(i.answer) for i in its]
            hits += max(sum(min(abs(h - x), 12 - abs(h - x)) <= sp.CLOCK_TOL for x in g) for h in range(1, 13))
        else:
            vals = [sp.score_spatial(cat, i.answer, i.answer).gt_value for i in its]
            hits += Counter(vals).most_common(1)[0][1]
    return 100.0 * hits / max(1, len(items))


def _spatial_majority_split(items: list[VQAItem]) -> dict[str, float]:
    qual = [i for i in items if i.category in sp.QUALITATIVE]
    quan = [i for i in items if i.category in sp.QUANTITATIVE]
    return {"qualitative": _spatial_majority(qual) if qual else float("nan"),
            "quantitative": _spatial_majority(quan) if quan else float("nan")}


def _headline(metrics: dict[str, float], headline: str) -> float:
    if headline not in HEADLINES:
        raise ValueError(f"headline must be one of {HEADLINES}, got {headline!r}")
    if headline == "mean":
        return (metrics["qualitative"] + metrics["quantitative"]) / 2
    return metrics[headline]


def _spatialrgpt(items, answers, headline):
    verdicts = [sp.score_spatial(it.category, a, it.answer) for it, a in zip(items, answers)]
    metrics, breakdown = sp.spatial_summary([(it.category, v) for it, v in zip(items, verdicts)])
    for key, row in breakdown.items():  # the constant-answer floor next to each category's accuracy
        if key.startswith("category:"):
            row["majority"] = _spatial_majority([it for it in items if it.category == key.split(":", 1)[1]])
    metrics["accuracy"] = _headline(metrics, headline)
    maj = _spatial_majority_split(items)
    metrics["majority"] = _headline(maj, headline) if headline != "mean" else (maj["qualitative"] + maj["quantitative"]) / 2
    rows = [{"correct": v.success, "parse_fail": v.parse_fail, "pred_value": v.pred_value, "gt_value": v.gt_value}
            for v in verdicts]
    return metrics, breakdown, rows


# ------------------------------------------------------------------------------------- BLINK
def _blink(items, answers, headline):
    letters = [sp.parse_option(a, it.extra["choices"]) for it, a in zip(items, answers)]
    correct = [f"({x})" == it.answer.strip() for x, it in zip(letters, items)]
    common = Counter(it.answer for it in items).most_common(1)[0][1]
    metrics = {"accuracy": _pct(correct), "parse_fail": _pct(x == "Z" for x in letters),
               "majority": 100.0 * common / len(items)}
    rows = [{"correct": c, "parsed": f"({x})"} for c, x in zip(correct, letters)]
    return metrics, {}, rows


# --------------------------------------------------------------------------------- VQAv2 / GQA
def _by_category(items, values, majority=None) -> dict[str, dict[str, float]]:
    groups: dict[str, list[float]] = defaultdict(list)
    members: dict[str, list[VQAItem]] = defaultdict(list)
    for it, v in zip(items, values):
        groups[it.category or "all"].append(v)
        members[it.category or "all"].append(it)
    out = {f"category:{k}": {"accuracy": 100.0 * statistics.fmean(v), "n": float(len(v))}
           for k, v in sorted(groups.items())}
    if majority is not None:
        for k in groups:
            out[f"category:{k}"]["majority"] = majority(members[k])
    return out


def _constant_per_category(items, truth, scorer) -> float:
    """Best constant answer per category (the commonest ground truth), scored by `scorer`."""
    groups: dict[str, list[VQAItem]] = defaultdict(list)
    for it in items:
        groups[it.category].append(it)
    total = 0.0
    for its in groups.values():
        guess = Counter(truth(i) for i in its).most_common(1)[0][0]
        total += sum(scorer(guess, i) for i in its)
    return 100.0 * total / max(1, len(items))


def _vqav2(items, answers, headline):
    acc = [vq.vqa_accuracy(a, it.answer) for it, a in zip(items, answers)]

    def majority(its):
        return _constant_per_category(its, lambda i: vq.normalize_vqa(Counter(i.answer).most_common(1)[0][0]),
                                      lambda g, i: vq.vqa_accuracy(g, i.answer))

    return ({"accuracy": 100.0 * statistics.fmean(acc), "majority": majority(items)},
            _by_category(items, acc, majority),
            [{"score": s, "correct": s >= 1.0} for s in acc])


def _gqa(items, answers, headline):
    ok = [float(vq.gqa_correct(a, it.answer)) for it, a in zip(items, answers)]

    def majority(its):
        return _constant_per_category(its, lambda i: i.answer.lower(), lambda g, i: float(vq.gqa_correct(g, i.answer)))

    return ({"accuracy": 100.0 * statistics.fmean(ok), "majority": majority(items)},
            _by_category(items, ok, majority),
            [{"correct": bool(o)} for o in ok])


# ----------------------------------------------------------------------------------- MMBench
def _mmbench(items, answers, headline):
    letters = [sp.parse_option(a, it.extra["choices"]) for it, a in zip(items, answers)]
    correct = [x == it.answer for x, it in zip(letters, items)]
    circ, single = vq.circular_accuracy([(it.extra["index"], c) for it, c in zip(items, correct)])
    breakdown = {}
    cats = sorted({it.category for it in items})
    for cat in cats:
        sub = [(it.extra["index"], c) for it, c in zip(items, correct) if it.category == cat]
        breakdown[f"category:{cat}"] = {"accuracy": vq.circular_accuracy(sub)[0], "n": float(len(sub))}
    guess = Counter(it.answer for it in items).most_common(1)[0][0]
    majority = vq.circular_accuracy([(it.extra["index"], it.answer == guess) for it in items])[0]
    return ({"accuracy": circ, "accuracy_single": single, "parse_fail": _pct(x == "Z" for x in letters),
             "majority": majority}, breakdown, [{"correct": c, "parsed": x} for c, x in zip(correct, letters)])


# --------------------------------------------------------------------------------------- MME
def _mme(items, answers, headline):
    rows = [(it.category, it.extra["image_id"], a, it.answer) for it, a in zip(items, answers)]
    metrics, breakdown = vq.mme_scores(rows)
    const = max((vq.mme_scores([(c, i, g, gt) for c, i, _, gt in rows])[0]["score"], g) for g in ("yes", "no"))
    metrics["majority"] = const[0]
    return metrics, breakdown, [{"correct": vq.mme_label(a) == it.answer.lower(), "parsed": vq.mme_label(a)}
                                for it, a in zip(items, answers)]


__all__ = ["HEADLINES", "KINDS", "score"]
