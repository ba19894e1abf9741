"""What every 3D head reads: the split's scenes, their points and the lifted, cached point features."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.data import scannet as S
from bench.data.scannet_lift import LiftParams, SceneLifter
from bench.errors import DataError


@dataclass
class Scene:
    id: str
    split: str
    points: S.ScenePoints
    file: Path
    feat: torch.Tensor  # (N, C) fp16 lifted features (zeros where unseen)
    seen: torch.Tensor  # (N,) bool: seen by >= 1 view
    keep: torch.Tensor  # (N,) bool: Lexicon3D's mask_full = random subset (train) & seen


class SceneSet:
    """Scenes of the train and val splits (`splits`), with one lifter over all their views."""

    def __init__(self, ctx, cfg, splits: tuple[str, ...] = ("train", "val"), need_views: int = 1):
        self.ctx, self.cfg, self.root = ctx, cfg, Path(ctx.root)
        self.ids = {s: S.split_scenes(self.root, s) for s in splits}
        for s, ids in self.ids.items():
            if not ids:
                raise DataError(self.root / "scannet_3d" / s, f"no scenes of split {s!r} (expected <scene>_vh_clean_2.pth)")
        self.views = {sid: S.scene_views(self.root, sid) for ids in self.ids.values() for sid in ids}
        short = {sid: len(v) for sid, v in self.views.items() if len(v) < need_views}
        if short:
            raise DataError(self.root / "scannet_2d", f"scenes with fewer than {need_views} views: {short}")
        self.K = S.intrinsics(self.root)
        self.params = LiftParams(cfg.visibility_threshold, cfg.cut_bound, cfg.upsample, cfg.normalisation)
        self.lifter = SceneLifter(ctx, self.root, self.K, self.views, self.params)
        ctx.log_params(scenes_train=len(self.ids.get("train", ())), scenes_val=len(self.ids.get("val", ())),
                       views_total=sum(len(v) for v in self.views.values()), intrinsics_fx=round(float(self.K[0, 0]), 4))

    def points(self, split: str, sid: str) -> tuple[S.ScenePoints, Path]:
        return S.load_points(self.root, split, sid), self.root / "scannet_3d" / split / f"{sid}_vh_clean_2.pth"

    def scene(self, split: str, sid: str, index: int = 0) -> Scene:
        pts, file = self.points(split, sid)
        feat, seen = self.lifter.get(sid, pts.coords, file)
        keep = seen.clone()
        n = len(pts.coords)
        if split == "train" and n > self.cfg.max_points_train:  # n_split_points subset, seed 1457 (+ scene index)
            rng = np.random.RandomState(self.cfg.point_seed + index)
            sub = torch.zeros(n, dtype=torch.bool)
            sub[torch.from_numpy(rng.choice(n, self.cfg.max_points_train, replace=False))] = True
            keep &= sub
        return Scene(sid, split, pts, file, feat, seen, keep)

    def scenes(self, split: str) -> list[Scene]:
        return [self.scene(split, sid, i) for i, sid in enumerate(self.ids[split])]

    def log_cache(self) -> None:
        st = self.lifter.stats
        self.ctx.log_params(lift_scenes_lifted=st.lifted, lift_scenes_reused=st.reused)
        if st.lifted:
            self.ctx.log_params(lift_points_per_s=round(st.points / max(st.seconds, 1e-9)))
