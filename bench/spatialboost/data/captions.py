"""Text generated from a view's ground truth: BLIP-558K-style short captions (stage 1), scene and
layout captions (the 2 caption turns of stage 3), and LLaVA-Instruct-style Q/A (stage 2).

Everything is computed from objects, colours and the geometry of :mod:`.geometry`, so the text is
correct by construction; the random generator only picks paraphrases and subsets.
"""
from __future__ import annotations

import numpy as np

from bench.data.scenes import Cube, ObjectInfo, ViewGeometry

from .templates import BRIEF_PROMPTS, INSTRUCT, fill, fmt_length

_IRREGULAR_PLURAL = {"box": "boxes", "bookshelf": "bookshelves", "glass": "glasses", "shelf": "shelves"}


def plural(noun: str) -> str:
    return _IRREGULAR_PLURAL.get(noun, noun + "es" if noun.endswith(("s", "x", "ch", "sh")) else noun + "s")


def article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def join_list(items: list[str]) -> str:
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def number_word(n: int) -> str:
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
    return words[n] if 0 <= n < len(words) else str(n)


def visible_objects(geom: ViewGeometry, min_pixels: int) -> list[tuple[ObjectInfo, Cube]]:
    """Objects with at least ``min_pixels`` valid pixels, largest first (ties by instance id)."""
    objs = [(geom.view.objects[i], c) for i, c in geom.cubes.items() if c.n_points >= min_pixels and i in geom.view.objects]
    return sorted(objs, key=lambda oc: (-oc[1].n_points, oc[0].instance_id))


def unique_named(objs: list[tuple[ObjectInfo, Cube]]) -> list[tuple[ObjectInfo, Cube]]:
    """Objects whose name (colour + category) is unique among ``objs``: a name refers to one object."""
    names = [o.name for o, _ in objs]
    return [(o, c) for o, c in objs if names.count(o.name) == 1]


def _room_phrase(geom: ViewGeometry) -> str:
    wall = geom.view.wall_colour
    return f"a room with {wall} walls" if wall else "a room"


def _distance_from_viewer(geom: ViewGeometry, cube: Cube) -> float:
    cam = np.array([0.0, geom.frame.camera_height, 0.0])
    return float(np.linalg.norm(cube.centre - cam))


# --------------------------------------------------------------------------------------------------
# stage 1: one short caption per image


def short_caption(geom: ViewGeometry, rng: np.random.Generator, min_pixels: int) -> str:
    """BLIP-style: lower case, no final period, the 1-3 largest objects and the room."""
    objs = visible_objects(geom, min_pixels)
    names = [article(o.name) for o, _ in objs[: int(rng.integers(1, 4))]]
    room = _room_phrase(geom)
    if not names:
        return f"an empty corner of {room}"
    if len(names) >= 2 and rng.random() < 0.5:
        a, b = objs[0], objs[1]
        dx = a[1].centre[0] - b[1].centre[0]
        rel = "next to" if abs(dx) < 0.5 else ("to the left of" if dx < 0 else "to the right of")
        return f"{article(a[0].name)} {rel} {article(b[0].name)} in {room}"
    forms = (f"{join_list(names)} in {room}", f"{room} with {join_list(names)}", f"an indoor scene with {join_list(names)}")
    return forms[int(rng.integers(len(forms)))]


def brief_prompt(rng: np.random.Generator) -> str:
    return BRIEF_PROMPTS[int(rng.integers(len(BRIEF_PROMPTS)))]


# --------------------------------------------------------------------------------------------------
# stage 3 caption turns


def scene_caption(geom: ViewGeometry, min_pixels: int) -> str:
    objs = visible_objects(geom, min_pixels)
    room = _room_phrase(geom)
    if not objs:
        return f"The image shows part of {room} with no furniture in view."
    names = [article(o.name) for o, _ in objs]
    text = f"The image shows {room}. It contains {join_list(names)}."
    big = objs[0][0].name
    return text + f" The {big} takes up the largest part of the view."


def layout_caption(geom: ViewGeometry, min_pixels: int) -> str:
    """Left-to-right order (canonical x), distances from the viewer, nearest and farthest object."""
    objs = unique_named(visible_objects(geom, min_pixels))
    if not objs:
        return "No objects are clearly visible."
    by_x = sorted(objs, key=lambda oc: oc[1].centre[0])
    parts = [f"the {o.name} ({fmt_length(_distance_from_viewer(geom, c))} away)" for o, c in by_x]
    if len(parts) == 1:
        o, c = by_x[0]
        return f"The {o.name} is {fmt_length(_distance_from_viewer(geom, c))} away from the viewer."
    text = "From left to right: " + join_list(parts) + "."
    if len(objs) > 1:
        near = min(objs, key=lambda oc: _distance_from_viewer(geom, oc[1]))
        far = max(objs, key=lambda oc: _distance_from_viewer(geom, oc[1]))
        text += f" The {near[0].name} is the closest to the viewer and the {far[0].name} is the farthest."
    return text


# --------------------------------------------------------------------------------------------------
# stage 2: LLaVA-Instruct-style conversation about one image


def _where(cube: Cube, W: int, H: int) -> str:
    u, v = cube.centroid_px
    horiz = "left" if u < W / 3 else ("right" if u > 2 * W / 3 else "center")
    vert = "top" if v < H / 3 else ("bottom" if v > 2 * H / 3 else "middle")
    if horiz == "center" and vert == "middle":
        return "in the center of the image"
    if horiz == "center":
        return f"in the {vert} part of the image"
    if vert == "middle":
        return f"on the {horiz} side of the image"
    return f"in the {vert} {horiz} part of the image"


def instruct_conversation(geom: ViewGeometry, rng: np.random.Generator, min_pixels: int,
                          n_turns: int = 3) -> list[tuple[str, str]]:
    """2-4 (question, answer) pairs about objects, colours, counts, positions, and a description."""
    objs = visible_objects(geom, min_pixels)
    H, W = geom.view.hw
    pool: list[tuple[str, str]] = []

    def q(kind: str, **slots) -> str:
        qs = INSTRUCT[kind]
        return fill(qs[int(rng.integers(len(qs)))], **slots)

    if objs:
        pool.append((q("objects"), f"I can see {join_list([article(o.name) for o, _ in objs])}."))
        cats = [o.category for o, _ in objs]
        unique_cat = [(o, c) for o, c in objs if cats.count(o.category) == 1 and o.colour]
        if unique_cat:
            o, _ = unique_cat[int(rng.integers(len(unique_cat)))]
            pool.append((q("colour", A=o.category), f"The {o.category} is {o.colour}."))
        cat = cats[int(rng.integers(len(cats)))]
        n = cats.count(cat)
        noun = cat if n == 1 else plural(cat)
        pool.append((q("count", A=plural(cat)), f"There {'is' if n == 1 else 'are'} {number_word(n)} {noun} in the image."))
        named = unique_named(objs)
        if named:
            o, c = named[int(rng.integers(len(named)))]
            pool.append((q("where", A=o.name), f"The {o.name} is {_where(c, W, H)}."))
            near = min(named, key=lambda oc: oc[1].median_depth)
            pool.append((q("closest"), f"The {near[0].name} is the closest object to the camera."))
    order = rng.permutation(len(pool))[: max(0, n_turns - 1)]
    turns = [pool[i] for i in sorted(order)]
    turns.append((q("detail"), scene_caption(geom, min_pixels) + " " + layout_caption(geom, min_pixels)))
    return turns
