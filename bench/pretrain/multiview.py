"""Multi-view pairs of the training scenes, and the scene-contrastive loss that reads them.

Single-image SimCLR never sees two views of one place, yet retrieval asks exactly that: an object crop
of one view must rank the *other* views of its scene (where the object shows) first. The synthetic
scenes are captured like frames of one video: which scene an image belongs to and where its camera
stood are capture metadata (``scenes/<sid>/scene.json``: split, intrinsics, camera-to-world poses),
not labels. So a positive pair is (an image of training scene s, another view of s whose camera
frustum overlaps the first one's: time-contrastive networks, Sermanet et al. 2018; CroCo's pairs,
Weinzaepfel et al. 2022); the negatives are the other scenes of the batch. No instance mask, depth or
class is read. A crop of ``cls/train`` names its scene and source view in its file name
(``<sid>_<view>_<instance>.JPEG``: where it was cut from). Only training scenes are ever opened.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.errors import DataError

_CROP_NAME = re.compile(r"(?P<sid>.+)_(?P<view>\d+)_(?P<inst>\d+)")


@dataclass(frozen=True)
class SceneIndex:
    """Which scene and source view each training image comes from, and the views' frustum overlap."""

    scene: np.ndarray  # (N,) scene number of each file (0..S-1)
    view: np.ndarray  # (N,) camera index the image shows or was cropped from
    whole: np.ndarray  # (N,) bool: a whole view (scenes/<sid>/color/<v>.jpg), not an object crop
    scene_ids: tuple[str, ...]
    view_file: dict[tuple[int, int], int]  # (scene, camera) -> file index of the whole view
    overlap: dict[int, np.ndarray]  # scene -> (V, V) share of camera a's frustum samples that camera b sees


def _source(root: Path, f: Path) -> tuple[str, int, bool]:
    rel = f.relative_to(root).parts
    if rel[0] == "scenes":  # scenes/<sid>/color/<v>.jpg
        return rel[1], int(Path(rel[-1]).stem), True
    m = _CROP_NAME.fullmatch(Path(rel[-1]).stem)  # cls/train/<category>/<sid>_<view>_<instance>.JPEG
    if rel[0] != "cls" or m is None:
        raise DataError(f, "not a scene view or a cls crop named <scene>_<view>_<instance>: its scene is unknown")
    return m["sid"], int(m["view"]), False


def frustum_overlap(poses: np.ndarray, K: np.ndarray, size: tuple[int, int],
                    depths=(1.0, 2.0, 3.0, 4.0), grid: int = 5) -> np.ndarray:
    """(V, V): the share of points on a grid of camera a's rays (at `depths` metres) that lie in front of
    camera b and inside its image. Poses only (camera-to-world, OpenCV): no depth map is read."""
    w, h = size
    u, v = np.meshgrid(np.linspace(0.5, w - 0.5, grid), np.linspace(0.5, h - 0.5, grid))
    rays = np.linalg.inv(K) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])  # (3, G)
    cam_pts = np.concatenate([rays * d for d in depths], axis=1)  # (3, G * D) in camera a
    out = np.zeros((len(poses), len(poses)))
    for a, pa in enumerate(poses):
        world = pa[:3, :3] @ cam_pts + pa[:3, 3:4]
        for b, pb in enumerate(poses):
            inv = np.linalg.inv(pb)
            c = inv[:3, :3] @ world + inv[:3, 3:4]
            front = c[2] > 0.05
            uv = (K @ c)[:2] / np.where(front, c[2], 1.0)
            inside = front & (uv[0] >= 0) & (uv[0] < w) & (uv[1] >= 0) & (uv[1] < h)
            out[a, b] = inside.mean()
    return out


def scene_index(root: Path, files: list[Path]) -> SceneIndex:
    """Scene membership of every training file, from its path; the poses from each scene's scene.json
    (read only for scenes the files come from; a scene whose split is not 'train' is refused)."""
    from bench.data.scenes import load_scene

    root = Path(root)
    sources = [_source(root, f) for f in files]
    scene_ids = tuple(sorted({s for s, _, _ in sources}))
    number = {s: i for i, s in enumerate(scene_ids)}
    overlap = {}
    for sid, i in number.items():
        meta = load_scene(root / "scenes" / sid)
        if meta.get("split") != "train":
            raise DataError(root / "scenes" / sid / "scene.json", f"split is {meta.get('split')!r}: pretraining "
                                                                  "reads training scenes only")
        cams = sorted(meta["cameras"], key=lambda c: c["index"])
        poses = np.array([c["camera_to_world"] for c in cams], float)
        overlap[i] = frustum_overlap(poses, np.array(meta["intrinsics"], float), tuple(meta["image_size"]))
    scene = np.array([number[s] for s, _, _ in sources])
    view = np.array([v for _, v, _ in sources])
    whole = np.array([w for _, _, w in sources])
    view_file = {(int(scene[k]), int(view[k])): k for k in np.flatnonzero(whole)}
    if not view_file:
        raise DataError(root / "scenes", "multi-view pretraining needs the scene views (sources must include 'scenes')")
    return SceneIndex(scene, view, whole, scene_ids, view_file, overlap)


@dataclass(frozen=True)
class PairBatch:
    anchor: torch.Tensor  # (B,) file index: any training image (view or object crop)
    positive: torch.Tensor  # (B,) file index: a whole view of the anchor's scene
    reference: torch.Tensor  # (B,) file index: the whole view the anchor shows or was cut from
    group: torch.Tensor  # (B,) scene number: items of one scene are each other's positives


def sample_pairs(index: SceneIndex, batch: int, rng: np.random.Generator, cross_view_p: float = 1.0,
                 pairing: str = "frustum") -> PairBatch:
    """`batch` anchors from distinct scenes while there are enough (then scenes repeat); each positive is
    another camera of the anchor's scene, drawn in proportion to frustum overlap (``frustum``) or
    uniformly (``scene``); with probability 1 - `cross_view_p` it is the anchor itself instead (plain
    SimCLR for that pair). `reference` is the whole view the anchor shows or was cut from (CroCo's
    second view of the pair, when the positive is another camera)."""
    if pairing not in ("frustum", "scene"):
        raise ValueError(f"unknown multi-view pairing {pairing!r} (frustum, scene)")
    n_scenes = len(index.scene_ids)
    scenes = np.concatenate([rng.permutation(n_scenes) for _ in range(-(-batch // n_scenes))])[:batch]
    members = {s: np.flatnonzero(index.scene == s) for s in range(n_scenes)}
    anchor, positive, reference = [], [], []
    for s in scenes.tolist():
        a = int(rng.choice(members[s]))
        va = int(index.view[a])
        cams = np.array(sorted(v for (t, v) in index.view_file if t == s))
        others = cams[cams != va]
        if len(others) and rng.random() < cross_view_p:
            w = index.overlap[s][va, others] if pairing == "frustum" else np.ones(len(others))
            w = w + 1e-3 if w.sum() > 0 else np.ones(len(others))
            vp = int(rng.choice(others, p=w / w.sum()))
        else:
            vp = va
        anchor.append(a)
        positive.append(a if vp == va else index.view_file[(s, vp)])
        reference.append(index.view_file.get((s, va), a))
    as_t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.long)  # noqa: E731
    return PairBatch(as_t(anchor), as_t(positive), as_t(reference), as_t(scenes))


def scene_contrastive(z1: torch.Tensor, z2: torch.Tensor, group: torch.Tensor, temperature: float) -> torch.Tensor:
    """SupCon (Khosla et al. 2020) over the 2B projections with scene number as the positive relation:
    each item's loss is the mean over its same-scene items of -log softmax (self excluded). With one
    pair per scene it is exactly NT-Xent."""
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    g = torch.cat([group, group]).to(z.device)
    sim = z @ z.t() / temperature
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    log_p = sim.masked_fill(eye, float("-inf")).log_softmax(dim=1)
    pos = (g[:, None] == g[None, :]) & ~eye
    return -(log_p.masked_fill(~pos, 0.0).sum(1) / pos.sum(1).clamp(min=1)).mean()


__all__ = ["PairBatch", "SceneIndex", "frustum_overlap", "sample_pairs", "scene_contrastive", "scene_index"]
