"""Language ground truth of a synthetic 3D scene, from its object list alone (no rendering):
ScanQA-style questions (colour, count, relation, distance) and ScanRefer-style referring expressions
that tell an object apart from same-class distractors (by colour, else by its nearest landmark).

Every object is a dict {"id", "category", "colour", "centre" (xyz), "size" (xyz)}; ids are the
instance ids written into the point cloud, so `object_ids` / `object_id` index the scene's instances.
"""
from __future__ import annotations

import numpy as np

NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _plural(cat: str) -> str:
    return cat + ("es" if cat.endswith(("x", "s")) else "s")


def _dist(a: dict, b: dict) -> float:
    return float(np.linalg.norm(np.asarray(a["centre"]) - np.asarray(b["centre"])))


def _nearest_other(obj: dict, objects: list[dict]) -> dict | None:
    others = [o for o in objects if o["category"] != obj["category"]]
    return min(others, key=lambda o: _dist(obj, o)) if others else None


def _by_cat(objects: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for o in objects:
        out.setdefault(o["category"], []).append(o)
    return out


def _name(o: dict, objects: list[dict]) -> str:
    """The shortest unambiguous name: "the chair" if unique, "the red chair" if its colour is, else None."""
    same = [x for x in objects if x["category"] == o["category"]]
    if len(same) == 1:
        return o["category"]
    if sum(x["colour"] == o["colour"] for x in same) == 1:
        return f"{o['colour']} {o['category']}"
    return ""


def scene_questions(scene_id: str, objects: list[dict], split: str) -> list[dict]:
    """ScanQA records ({answers, object_ids, object_names, question, question_id, scene_id})."""
    recs: list[dict] = []
    short = scene_id.rsplit("_", 1)[0]

    def add(q: str, answers: list[str], objs: list[dict]) -> None:
        recs.append({"answers": answers, "object_ids": [int(o["id"]) for o in objs],
                     "object_names": [o["category"] for o in objs], "question": q,
                     "question_id": f"{split}-{short}-{len(recs)}", "scene_id": scene_id})

    cats = _by_cat(objects)
    for cat, objs in sorted(cats.items()):
        add(f"How many {_plural(cat)} are in the room?", [NUMBERS[min(len(objs), 10)]], objs)
    for o in objects:
        name = _name(o, objects)
        nb = _nearest_other(o, objects)
        if not name:
            if nb is not None and _name(nb, objects):
                add(f"What color is the {o['category']} next to the {_name(nb, objects)}?", [o["colour"]], [o, nb])
            continue
        if " " not in name:
            add(f"What color is the {name}?", [o["colour"]], [o])
        if nb is not None:
            add(f"What is next to the {name}?", [nb["category"]], [o, nb])
            add(f"How far is the {name} from the {nb['category'] if _name(nb, objects) == nb['category'] else 'nearest object'}?",
                [f"{round(_dist(o, nb) * 2) / 2:.1f} meters"], [o, nb])
    return recs


def scene_referrals(scene_id: str, objects: list[dict]) -> list[dict]:
    """ScanRefer records ({scene_id, object_id (str), object_name, ann_id (str), description, token})."""
    recs: list[dict] = []
    cats = _by_cat(objects)
    for o in objects:
        same = cats[o["category"]]
        nb = _nearest_other(o, objects)
        texts = []
        if len(same) == 1:
            texts.append(f"this is a {o['colour']} {o['category']}." +
                         (f" it is next to the {nb['category']}." if nb is not None else ""))
        else:
            if sum(x["colour"] == o["colour"] for x in same) == 1:
                texts.append(f"the {o['colour']} {o['category']}. there are other {_plural(o['category'])} in the room.")
            # landmark: an object of another class whose nearest `category` instance is this one
            for lm in sorted((x for x in objects if x["category"] != o["category"]), key=lambda x: _dist(o, x)):
                if min(same, key=lambda s: _dist(s, lm)) is o and _name(lm, objects):
                    texts.append(f"the {o['category']} closest to the {_name(lm, objects)}.")
                    break
        for t in texts:
            recs.append({"scene_id": scene_id, "object_id": str(int(o["id"])), "object_name": o["category"],
                         "ann_id": str(len([r for r in recs if r["object_id"] == str(int(o["id"]))])),
                         "description": t, "token": t.replace(".", " .").split()})
    return recs


__all__ = ["scene_questions", "scene_referrals"]
