"""Multi-turn spatial chain-of-thought for one image (paper §3.2, App. C): 12 turns, in the paper's
order, from pixel-level to object-level to scene-level reasoning, then two caption turns.

    pixel  (5): depth(P1), depth(P2), closer(P1, P2), depth(P3), closer(P3, P1|P2)
    object (4): cube(A), cube(B), left_of(A, B), left_of(C, A) (or (B, A) with 2 objects)
    scene  (1): distance(A, B)
    caption(2): scene caption, layout caption

P1 lies on object A and P2 on object B, so each level builds on the one before (the "chain").
Ordering switches for the ablations (paper Tables 7 and 15): ``forward`` (the above), ``reverse``
(the 12 turns reversed), ``random`` (shuffled with the sample's seed); ``levels`` keeps a subset.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.data.scenes import ViewGeometry, instance_pixels

from .captions import layout_caption, scene_caption, unique_named, visible_objects
from .templates import (CLOSER, CUBE, DEPTH, DISTANCE, LAYOUT_CAPTION, LEFT, LEVELS, SCENE_CAPTION, fill, fmt_length,
                        fmt_point, fmt_vec)

ORDERS = ("forward", "reverse", "random")
TURNS_PER_LEVEL = {"pixel": 5, "object": 4, "scene": 1, "caption": 2}


class InsufficientContent(ValueError):
    """The view cannot give all 12 turns (too few distinct, separable objects or depth points)."""


@dataclass(frozen=True)
class Turn:
    level: str
    family: str
    question: str
    answer: str
    facts: dict = field(default_factory=dict, compare=False)  # the numbers behind the answer (tests)


@dataclass(frozen=True)
class CotConfig:
    min_object_frac: float = 0.002  # an object needs this fraction of the image's pixels
    min_left_dx: float = 0.15  # metres of canonical-x separation for a left/right question
    min_closer_gap: float = 0.10  # metres of depth difference for a closer question ...
    min_closer_rel: float = 0.05  # ... or this fraction of the nearer depth, whichever is larger
    border: int = 8  # pixel points stay this far from the image border
    smooth_rel: float = 0.02  # max relative depth range in a point's 5x5 neighbourhood
    cube_trim: float = 0.0  # see geometry.object_cubes (0 for exact ground truth)

    def min_pixels(self, hw: tuple[int, int]) -> int:
        return max(1, int(round(self.min_object_frac * hw[0] * hw[1])))


def _closer_ok(da: float, db: float, cfg: CotConfig) -> bool:
    return abs(da - db) >= max(cfg.min_closer_gap, cfg.min_closer_rel * min(da, db))


class _Points:
    """Rejection sampling of pixel points that are safe to ask about: valid depth, one instance (or
    background) over the 5x5 neighbourhood with smooth depth there (<= ``smooth_rel``), away from the
    border, and optionally depth-separable from given depths. Uniform over such pixels."""

    def __init__(self, geom: ViewGeometry, cfg: CotConfig, rng: np.random.Generator):
        self.geom, self.cfg, self.rng = geom, cfg, rng
        self.H, self.W = geom.view.hw
        self.pixels = instance_pixels(geom.view)

    def good(self, u: int, v: int) -> bool:
        b, view = self.cfg.border, self.geom.view
        if not (b <= u < self.W - b and b <= v < self.H - b):
            return False
        d = view.depth[v - 2:v + 3, u - 2:u + 3]
        i = view.instance[v - 2:v + 3, u - 2:u + 3]
        z = float(view.depth[v, u])
        return bool(z > 0 and (d > 0).all() and (i == i[2, 2]).all() and d.max() - d.min() <= self.cfg.smooth_rel * z)

    def ok_for(self, instance_id: int) -> bool:
        return self.sample(instance_id, tries=200, consume=False) is not None

    def sample(self, instance_id: int | None = None, far_from: list[float] = (), tries: int = 2000,
               consume: bool = True) -> tuple[int, int, float] | None:
        rng = self.rng if consume else np.random.default_rng(instance_id or 0)
        if instance_id is not None:
            if instance_id not in self.pixels:
                return None
            vs, us = self.pixels[instance_id]
        b = self.cfg.border
        for _ in range(tries):
            if instance_id is not None:
                k = int(rng.integers(len(vs)))
                u, v = int(us[k]), int(vs[k])
            else:
                u, v = int(rng.integers(b, self.W - b)), int(rng.integers(b, self.H - b))
            if not self.good(u, v):
                continue
            z = float(self.geom.view.depth[v, u])
            if all(_closer_ok(z, f, self.cfg) for f in far_from):
                return u, v, z
        return None

    def text(self, p) -> str:
        return fmt_point(p[0], p[1], self.W, self.H)


def _depth_turn(pts: _Points, p, rng) -> Turn:
    q, a = DEPTH.pick(rng)
    s = {"A": pts.text(p), "X": fmt_length(p[2])}
    return Turn("pixel", "depth", fill(q, **s), fill(a, **s), {"point": p[:2], "depth": p[2]})


def _closer_turn(pts: _Points, pa, pb, rng) -> Turn:
    outcome = "yes" if pa[2] < pb[2] else "no"
    q, a = CLOSER.pick(rng, outcome)
    s = {"A": pts.text(pa), "B": pts.text(pb), "XA": fmt_length(pa[2]), "XB": fmt_length(pb[2])}
    return Turn("pixel", "closer", fill(q, **s), fill(a, **s), {"a": pa, "b": pb, "closer": outcome == "yes"})


def _cube_turn(name: str, cube, rng) -> Turn:
    q, a = CUBE.pick(rng)
    s = {"A": name, "C": fmt_vec(cube.centre)}
    return Turn("object", "cube_centre", fill(q, **s), fill(a, **s), {"object": name, "centre": cube.centre.copy()})


def _left_turn(na: str, ca, nb: str, cb, rng) -> Turn:
    dx = float(ca.centre[0] - cb.centre[0])
    outcome = "yes" if dx < 0 else "no"
    q, a = LEFT.pick(rng, outcome)
    s = {"A": na, "B": nb, "DX": fmt_length(abs(dx))}
    return Turn("object", "left_of", fill(q, **s), fill(a, **s), {"a": na, "b": nb, "left": outcome == "yes", "dx": dx})


def _distance_turn(na: str, ca, nb: str, cb, rng) -> Turn:
    dist = float(np.linalg.norm(ca.centre - cb.centre))
    q, a = DISTANCE.pick(rng)
    s = {"A": na, "B": nb, "X": fmt_length(dist)}
    return Turn("scene", "distance", fill(q, **s), fill(a, **s), {"a": na, "b": nb, "distance": dist})


def spatial_turns(geom: ViewGeometry, rng: np.random.Generator, cfg: CotConfig = CotConfig()) -> list[Turn]:
    """The 12 turns of one image in forward order; raises :class:`InsufficientContent` when the view
    lacks two uniquely named objects separated left/right, or separable depth points."""
    min_px = cfg.min_pixels(geom.view.hw)
    objs = unique_named(visible_objects(geom, min_px))
    pts = _Points(geom, cfg, rng)
    objs = [(o, c) for o, c in objs if pts.ok_for(o.instance_id)]
    pairs = [(i, j) for i in range(len(objs)) for j in range(len(objs))
             if i != j and abs(objs[i][1].centre[0] - objs[j][1].centre[0]) >= cfg.min_left_dx]
    if not pairs:
        raise InsufficientContent(f"{geom.view.key}: fewer than 2 separable, uniquely named objects")
    i, j = pairs[int(rng.integers(len(pairs)))]
    (oa, ca), (ob, cb) = objs[i], objs[j]
    # pixel level: P1 on A, P2 on B (depth-separable from P1), P3 anywhere, separable from P1 or P2
    p1 = pts.sample(oa.instance_id)
    p2 = pts.sample(ob.instance_id, far_from=[p1[2]]) or pts.sample(None, far_from=[p1[2]])
    if p2 is None:
        raise InsufficientContent(f"{geom.view.key}: no depth-separable point pair")
    ref = p1 if rng.random() < 0.5 else p2
    p3 = pts.sample(None, far_from=[ref[2]])
    if p3 is None:
        ref = p2 if ref is p1 else p1
        p3 = pts.sample(None, far_from=[ref[2]])
    if p3 is None:
        raise InsufficientContent(f"{geom.view.key}: no third depth-separable point")
    turns = [_depth_turn(pts, p1, rng), _depth_turn(pts, p2, rng), _closer_turn(pts, p1, p2, rng),
             _depth_turn(pts, p3, rng), _closer_turn(pts, p3, ref, rng)]
    # object level
    turns += [_cube_turn(oa.name, ca, rng), _cube_turn(ob.name, cb, rng), _left_turn(oa.name, ca, ob.name, cb, rng)]
    others = [k for k in range(len(objs)) if k not in (i, j) and abs(objs[k][1].centre[0] - ca.centre[0]) >= cfg.min_left_dx]
    if others:
        oc, cc = objs[others[int(rng.integers(len(others)))]]
        turns.append(_left_turn(oc.name, cc, oa.name, ca, rng))
    else:
        turns.append(_left_turn(ob.name, cb, oa.name, ca, rng))
    # scene level
    turns.append(_distance_turn(oa.name, ca, ob.name, cb, rng))
    # captions
    q, _ = SCENE_CAPTION.pick(rng)
    turns.append(Turn("caption", "scene_caption", q, scene_caption(geom, min_px)))
    q, _ = LAYOUT_CAPTION.pick(rng)
    turns.append(Turn("caption", "layout_caption", q, layout_caption(geom, min_px)))
    assert [t.level for t in turns] == [lv for lv in LEVELS for _ in range(TURNS_PER_LEVEL[lv])]
    return turns


def arrange(turns: list[Turn], order: str = "forward", levels=LEVELS, rng: np.random.Generator | None = None) -> list[Turn]:
    """Keep the turns of ``levels`` and put them in ``order`` (forward / reverse / random)."""
    bad = set(levels) - set(LEVELS)
    if bad or not levels:
        raise ValueError(f"levels must be a non-empty subset of {LEVELS}, got {levels!r}")
    kept = [t for t in turns if t.level in levels]
    if order == "forward":
        return kept
    if order == "reverse":
        return kept[::-1]
    if order == "random":
        if rng is None:
            raise ValueError("order='random' needs an rng")
        return [kept[k] for k in rng.permutation(len(kept))]
    raise ValueError(f"order must be one of {ORDERS}, got {order!r}")


def to_conversation(turns: list[Turn], image_token: str | None = "<image>") -> list[dict]:
    """LLaVA conversation: human/gpt alternating; the image placeholder opens the first question."""
    conv = []
    for k, t in enumerate(turns):
        q = f"{image_token}\n{t.question}" if (k == 0 and image_token) else t.question
        conv += [{"from": "human", "value": q}, {"from": "gpt", "value": t.answer}]
    return conv
