"""Judge-free scoring of SpatialRGPT-Bench answers and strict option parsing for BLINK.

SpatialRGPT-Bench's official scorer asks gpt-4-turbo to convert units, read clock hours or mark a
yes/no answer; its success rules are arithmetic. Here the reading is done by regular expressions
and the same arithmetic decides (docs/vlm-eval.md, "judge=regex-v1"):

* distances and sizes: the last number+unit of each text, in metres; success iff |p - g| <= 0.25 g
  (the official ``0.75 g <= p <= 1.25 g``); no number in the answer = failure, counted as parse_fail;
* direction: clock hours; success iff min(|a - r|, 12 - |a - r|) <= 1;
* predicates: polarity of the first yes-word / no-word, else the relation word against its antonym;
* choices: the first ``Region [k]`` the answer names.

BLINK (``parser=blink-strict-v1``): a leading option letter, else exactly one ``(X)`` token, else
exactly one choice text, else exactly one standalone option letter, else ``Z`` (wrong).
Pure Python: no torch, importable by tests and reports.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

JUDGE = "regex-v1"
BLINK_PARSER = "blink-strict-v1"
REL_TOL = 0.25  # |pred - gt| / gt for distances and sizes
CLOCK_TOL = 1  # hours

QUANTITATIVE = ("distance_data", "horizontal_distance_data", "vertical_distance_data", "width_data", "height_data",
                "direction")
PREDICATES = tuple(f"{r}_predicate" for r in ("left", "right", "above", "below", "behind", "front", "big", "small",
                                              "tall", "short", "wide", "thin"))
CHOICES = tuple(f"{r}_choice" for r in ("left", "right", "above", "below", "tall", "short"))
QUALITATIVE = PREDICATES + CHOICES
CATEGORIES = QUANTITATIVE + QUALITATIVE
# the official script's report buckets (qualitative): below/above, left/right, big/small, tall/short, wide/thin,
# behind/front
BUCKETS = {"below_above": ("below", "above"), "left_right": ("left", "right"), "big_small": ("big", "small"),
           "tall_short": ("tall", "short"), "wide_thin": ("wide", "thin"), "behind_front": ("behind", "front")}

# the judge prompt's conversion factors (1 in = 0.0254 m, 1 ft = 0.3048 m, 1 cm = 0.01 m), plus mm / km
UNIT_M = {"m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0, "cm": 0.01, "centimeter": 0.01,
          "centimeters": 0.01, "centimetre": 0.01, "centimetres": 0.01, "mm": 0.001, "millimeter": 0.001,
          "millimeters": 0.001, "millimetre": 0.001, "millimetres": 0.001, "km": 1000.0, "kilometer": 1000.0,
          "kilometers": 1000.0, "in": 0.0254, "inch": 0.0254, "inches": 0.0254, '"': 0.0254, "ft": 0.3048,
          "feet": 0.3048, "foot": 0.3048, "'": 0.3048}
_UNITS = "|".join(sorted((re.escape(u) for u in UNIT_M), key=len, reverse=True))
QUANTITY = re.compile(rf"(\d+(?:\.\d+)?)\s*(?:({_UNITS})(?![a-z]))?", re.IGNORECASE)
REGION = re.compile(r"region\s*\[?\s*(\d+)\s*\]?", re.IGNORECASE)
CLOCK = re.compile(r"(\d{1,2})\s*o\s*['’`]?\s*clock", re.IGNORECASE)
YES = re.compile(r"\b(yes|indeed|correct|true)\b", re.IGNORECASE)
NO = re.compile(r"\b(no|not|incorrect|false)\b", re.IGNORECASE)
# predicate category -> (relation words, antonym words), as regular expressions
RELATION = {
    "left": (r"\bleft\b", r"\bright\b"), "right": (r"\bright\b", r"\bleft\b"),
    "above": (r"\b(above|higher)\b", r"\b(below|lower|beneath|under)\b"),
    "below": (r"\b(below|lower|beneath|under)\b", r"\b(above|higher)\b"),
    "behind": (r"\b(behind|further|farther)\b", r"\b(in front|closer|nearer)\b"),
    "front": (r"\b(in front|closer|nearer)\b", r"\b(behind|further|farther)\b"),
    "big": (r"\b(bigger|larger)\b", r"\bsmaller\b"), "small": (r"\bsmaller\b", r"\b(bigger|larger)\b"),
    "tall": (r"\btaller\b", r"\bshorter\b"), "short": (r"\bshorter\b", r"\btaller\b"),
    "wide": (r"\bwider\b", r"\b(thinner|narrower)\b"), "thin": (r"\b(thinner|narrower)\b", r"\bwider\b"),
}


@dataclass(frozen=True)
class Verdict:
    success: bool
    parse_fail: bool = False  # the answer held nothing the rule could read (the official match_fail_count)
    pred_value: float | None = None  # metres / clock hour / polarity (1, 0) / region index, for the artifact
    gt_value: float | None = None


def _without_regions(text: str) -> str:
    return REGION.sub(" ", text)


def parse_metres(text: str) -> float | None:
    """The last quantity of `text` in metres (a bare number is metres); None without a number.
    Region names ("Region [0]") are not quantities."""
    found = list(QUANTITY.finditer(_without_regions(text)))
    if not found:
        return None
    m = found[-1]
    return float(m.group(1)) * UNIT_M[(m.group(2) or "m").lower()]


def parse_clock(text: str) -> int | None:
    m = CLOCK.search(_without_regions(text))
    if m is None:
        return None
    hour = int(m.group(1))
    return hour if 1 <= hour <= 12 else None


def polarity(text: str, category: str) -> bool | None:
    """True (the predicate holds), False, or None (unreadable)."""
    yes, no = YES.search(text), NO.search(text)
    if yes or no:
        if yes and no:
            return yes.start() < no.start()
        return bool(yes)
    rel, anti = RELATION[category.split("_")[0]]
    r, a = re.search(rel, text, re.IGNORECASE), re.search(anti, text, re.IGNORECASE)
    if r and a:
        return r.start() < a.start()
    if r or a:
        return bool(r)
    return None


def first_region(text: str) -> int | None:
    m = REGION.search(text)
    return int(m.group(1)) if m else None


def score_spatial(category: str, pred: str, gt: str) -> Verdict:
    """One SpatialRGPT-Bench answer against its ground-truth sentence."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown SpatialRGPT-Bench category {category!r}; known: {', '.join(CATEGORIES)}")
    if category == "direction":
        g, p = parse_clock(gt), parse_clock(pred)
        if g is None:
            raise ValueError(f"ground truth without a clock hour: {gt!r}")
        if p is None:
            return Verdict(False, True, None, g)
        diff = abs(p - g)
        return Verdict(min(diff, 12 - diff) <= CLOCK_TOL, False, p, g)
    if category in QUANTITATIVE:
        g, p = parse_metres(gt), parse_metres(pred)
        if g is None:
            raise ValueError(f"ground truth without a quantity: {gt!r}")
        if p is None:
            return Verdict(False, True, None, g)
        return Verdict(abs(p - g) <= REL_TOL * g + 1e-12, False, p, g)
    if category in PREDICATES:
        g, p = polarity(gt, category), polarity(pred, category)
        if g is None:
            raise ValueError(f"ground truth of polarity unknown: {gt!r}")
        if p is None:
            return Verdict(False, True, None, float(g))
        return Verdict(p == g, False, float(p), float(g))
    g, p = first_region(gt), first_region(pred)
    if g is None:
        raise ValueError(f"ground truth names no region: {gt!r}")
    if p is None:
        return Verdict(False, True, None, g)
    return Verdict(p == g, False, p, g)


def spatial_summary(rows: list[tuple[str, Verdict]]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(metrics, breakdown) as the official script reports them: per-category accuracy (%), buckets,
    qualitative and quantitative micro-averages, parse failures."""
    by_cat: dict[str, list[Verdict]] = {}
    for cat, v in rows:
        by_cat.setdefault(cat, []).append(v)

    def acc(vs: list[Verdict]) -> float:
        return 100.0 * sum(v.success for v in vs) / len(vs) if vs else float("nan")

    breakdown = {f"category:{c}": {"accuracy": acc(vs), "n": float(len(vs)),
                                   "parse_fail": float(sum(v.parse_fail for v in vs))}
                 for c, vs in sorted(by_cat.items())}
    for bucket, words in BUCKETS.items():
        vs = [v for c, lst in by_cat.items() if c in QUALITATIVE and c.split("_")[0] in words for v in lst]
        if vs:
            breakdown[f"bucket:{bucket}"] = {"accuracy": acc(vs), "n": float(len(vs))}
    qual = [v for c, lst in by_cat.items() if c in QUALITATIVE for v in lst]
    quan = [v for c, lst in by_cat.items() if c in QUANTITATIVE for v in lst]
    metrics = {"qualitative": acc(qual), "quantitative": acc(quan),
               "parse_fail": 100.0 * sum(v.parse_fail for _, v in rows) / max(1, len(rows))}
    return metrics, breakdown


# ------------------------------------------------------------------------------------------ BLINK
_LEAD = re.compile(r"^\s*\(?([A-Z])\)?(?:[.:)\s]|$)")
_LONE_LOWER = re.compile(r"^\s*\(?([a-z])\)?[.:]?\s*$")
_PAREN = re.compile(r"\(([A-Z])\)")


def parse_option(text: str, choices: list[str] | tuple[str, ...]) -> str:
    """The option letter an answer picks (``A``..), or ``Z`` when it does not pick exactly one.

    1. a leading letter: ``B``, ``(B)``, ``B.``, ``B) ...``, ``B is closer`` (a lower-case letter only
       when it is the whole answer: ``b``, ``(b)``; a sentence starting with "a" is an article), unless
       another option is named in parentheses (``(A) or (B)``: no single pick);
    2. else exactly one ``(X)`` token anywhere; 3. else exactly one choice text contained (any case);
    4. else exactly one standalone option letter (``Point B``); 5. else ``Z``.
    """
    letters = [chr(ord("A") + i) for i in range(len(choices))]
    parens = {x for x in _PAREN.findall(text) if x in letters}
    m = _LEAD.match(text) or _LONE_LOWER.match(text)
    if m and m.group(1).upper() in letters and parens <= {m.group(1).upper()}:
        return m.group(1).upper()
    if len(parens) == 1:
        return parens.pop()
    low = text.lower()
    hits = [letters[i] for i, c in enumerate(choices) if c and c.lower() in low]
    if len(hits) == 1:
        return hits[0]
    standalone = {x for x in re.findall(r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])", text) if x in letters}
    if len(standalone) == 1:
        return standalone.pop()
    return "Z"


__all__ = ["BLINK_PARSER", "BUCKETS", "CATEGORIES", "CHOICES", "JUDGE", "PREDICATES", "QUALITATIVE", "QUANTITATIVE",
           "Verdict", "first_region", "parse_clock", "parse_metres", "parse_option", "polarity", "score_spatial",
           "spatial_summary"]
