"""Question/answer template families of the spatial chain-of-thought data (paper App. C, Tables 12-14)
and the number formats every generator shares.

Placeholders: ``[A]``/``[B]`` (a pixel point or an object name), ``[X]`` (a length), ``[XA]``/``[XB]``
(the lengths of A and B), ``[C]`` (a 3D centre), ``[DX]`` (a signed horizontal offset). A family
lists several paraphrases of the question and of the answer; the generator draws one of each with
its seeded RNG, so the data is deterministic for a seed.

Units (paper App. C): lengths are written in metres rounded to 3 decimals, and in centimetres
(1 decimal, the same millimetre precision) when they are below 0.5 m, with the same templates.
Cube centres are signed 3-vectors and are always written in metres (3 decimals) so the three
coordinates share one unit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CM_BELOW_M = 0.5  # lengths below this are written in centimetres


def fmt_length(metres: float) -> str:
    """A non-negative length: ``1.234 meters`` or, below 0.5 m, ``42.1 centimeters``."""
    v = float(metres)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"length must be finite and >= 0, got {metres!r}")
    v = round(v, 3)  # metres to the millimetre first, so both units show the same quantity
    if v < CM_BELOW_M:
        return f"{v * 100:.1f} centimeters"
    return f"{v:.3f} meters"


def parse_length(text: str) -> float:
    """Inverse of :func:`fmt_length` (for tests and evaluation): returns metres."""
    num, unit = text.strip().split()[:2]
    return float(num) / 100.0 if unit.startswith("centimet") else float(num)


def fmt_coord(v: float) -> str:
    """A signed coordinate in metres, 3 decimals, no negative zero."""
    r = round(float(v), 3)
    return f"{0.0 if r == 0 else r:.3f}"


def fmt_vec(v) -> str:
    x, y, z = (float(t) for t in v)
    return f"({fmt_coord(x)}, {fmt_coord(y)}, {fmt_coord(z)})"


def fmt_point(u: float, v: float, width: int, height: int) -> str:
    """A pixel point as normalised image coordinates ``(x, y)`` in [0, 1] (x from the left, y from the
    top, pixel centres), 3 decimals: independent of the resolution the encoder sees."""
    return f"({(u + 0.5) / width:.3f}, {(v + 0.5) / height:.3f})"


def fill(template: str, **slots: str) -> str:
    out = template
    for k, v in slots.items():
        out = out.replace(f"[{k}]", v)
    if "[" in out and "]" in out and any(f"[{k}]" in out for k in ("A", "B", "X", "XA", "XB", "C", "DX", "N")):
        raise ValueError(f"unfilled placeholder in {out!r}")
    return out


@dataclass(frozen=True)
class Family:
    """One question type: its level, question paraphrases and answer paraphrases (by outcome)."""

    name: str
    level: str  # pixel | object | scene | caption
    questions: tuple[str, ...]
    answers: dict[str, tuple[str, ...]]  # outcome -> paraphrases

    def pick(self, rng: np.random.Generator, outcome: str = "default") -> tuple[str, str]:
        q = self.questions[int(rng.integers(len(self.questions)))]
        answers = self.answers[outcome]
        return q, answers[int(rng.integers(len(answers)))]


LEVELS: tuple[str, ...] = ("pixel", "object", "scene", "caption")

# ---- Table 12: pixel level -------------------------------------------------------------------------
DEPTH = Family(
    "depth", "pixel",
    questions=(
        "What is the depth value at pixel point [A]?",
        "What is the depth at point [A]?",
        "How far from the camera is the surface at pixel point [A]?",
        "Estimate the depth value at pixel point [A].",
    ),
    answers={"default": (
        "The depth value at pixel point [A] is [X].",
        "The depth at point [A] is [X].",
        "The surface at pixel point [A] is [X] from the camera.",
    )},
)
CLOSER = Family(
    "closer", "pixel",
    questions=(
        "Is point [A] closer than [B]?",
        "Is pixel point [A] closer to the camera than pixel point [B]?",
        "Is point [A] nearer to the camera than point [B]?",
    ),
    answers={
        "yes": (
            "Yes. Point [A] is at [XA] and point [B] is at [XB], so [A] is closer.",
            "Yes, point [A] ([XA]) is closer than point [B] ([XB]).",
        ),
        "no": (
            "No. Point [A] is at [XA] and point [B] is at [XB], so [B] is closer.",
            "No, point [B] ([XB]) is closer than point [A] ([XA]).",
        ),
    },
)

# ---- Table 13: object level ------------------------------------------------------------------------
CUBE = Family(
    "cube_centre", "object",
    questions=(
        "What is the center of the 3D bounding cube of the [A]?",
        "Where is the center of the [A]'s 3D bounding cube?",
        "Give the 3D center coordinates of the bounding cube of the [A].",
    ),
    answers={"default": (
        "The center of the [A]'s bounding cube is at [C] in meters.",
        "The [A]'s 3D bounding cube is centered at [C] in meters.",
    )},
)
LEFT = Family(
    "left_of", "object",
    questions=(
        "Is the [A] to the left of the [B] from the viewer's perspective?",
        "From the viewer's perspective, is the [A] to the left of the [B]?",
        "Is the [A] on the left side of the [B] from the viewer's perspective?",
    ),
    answers={
        "yes": (
            "Yes. The [A] is [DX] to the left of the [B] from the viewer's perspective.",
            "Yes, the [A] is to the left of the [B], by [DX].",
        ),
        "no": (
            "No. The [A] is [DX] to the right of the [B] from the viewer's perspective.",
            "No, the [A] is to the right of the [B], by [DX].",
        ),
    },
)

# ---- Table 14: scene level + captions --------------------------------------------------------------
DISTANCE = Family(
    "distance", "scene",
    questions=(
        "What is the distance between the [A] and the [B]?",
        "How far apart are the [A] and the [B]?",
        "How far is the [A] from the [B]?",
    ),
    answers={"default": (
        "The distance between the [A] and the [B] is [X].",
        "The [A] and the [B] are [X] apart.",
    )},
)
SCENE_CAPTION = Family(
    "scene_caption", "caption",
    questions=(
        "Describe the scene in the image.",
        "Give a short description of the scene.",
        "What does this scene look like?",
    ),
    answers={"default": ("[X]",)},
)
LAYOUT_CAPTION = Family(
    "layout_caption", "caption",
    questions=(
        "Describe the spatial layout of the objects in the scene.",
        "How are the objects arranged in the scene?",
        "Describe where the objects are in the scene.",
    ),
    answers={"default": ("[X]",)},
)

SPATIAL_FAMILIES: tuple[Family, ...] = (DEPTH, CLOSER, CUBE, LEFT, DISTANCE, SCENE_CAPTION, LAYOUT_CAPTION)

# ---- stage 1: BLIP-558K-style caption prompts (LLaVA pretraining) -----------------------------------
BRIEF_PROMPTS: tuple[str, ...] = (
    "Give a brief description of the image.",
    "Describe the image concisely.",
    "Provide a brief description of the given image.",
    "Summarize the visual content of the image.",
    "Write a terse but informative summary of the picture.",
    "Share a concise interpretation of the image provided.",
    "Render a clear and concise summary of the photo.",
    "What is in the photo?",
)

# ---- stage 2: LLaVA-Instruct-style single-image questions -----------------------------------------
INSTRUCT = {
    "objects": ("What objects can you see in this image?", "Which objects are visible in the image?",
                "List the objects in the image."),
    "colour": ("What color is the [A]?", "What is the color of the [A] in the image?"),
    "count": ("How many [A] are there in the image?", "How many [A] can you see?"),
    "where": ("Where is the [A] in the image?", "In which part of the image is the [A]?"),
    "closest": ("Which object is the closest to the camera?", "Which object is nearest to the viewer?"),
    "detail": ("Describe the image in detail.", "Can you describe this room in detail?",
               "What is happening in this scene? Describe it in detail."),
}

# ---- stage 2: multi-view VQA ----------------------------------------------------------------------
MULTIVIEW = {
    "closest_view": ("In which view is the [A] closest to the camera?",
                     "Which view shows the [A] from the shortest distance?"),
    "count": ("How many [A] are there across all the views?",
              "Counting every view, how many different [A] are in the scene?"),
    "n_objects": ("How many different objects can be seen across all the views?",),
    "visible_in": ("In which views can you see the [A]?", "Which views show the [A]?"),
    "motion": ("How did the camera move from view [A] to view [B]?",
               "Describe the camera motion between view [A] and view [B]."),
}


def all_template_text() -> list[str]:
    """Every template string (the tokenizer corpus includes them)."""
    out: list[str] = []
    for fam in SPATIAL_FAMILIES:
        out += list(fam.questions)
        for answers in fam.answers.values():
            out += list(answers)
    out += list(BRIEF_PROMPTS)
    for group in (INSTRUCT, MULTIVIEW):
        for qs in group.values():
            out += list(qs)
    return out
