"""scannet-registration / synth-scannet-registration: two partial clouds of one scene (vertices seen
from disjoint view sets, lifted from their own views only), cloud 2 moved by the scene's registration
pose, REGTR-style head + weighted Kabsch; RR@0.05 m, RTE, RRE (shared/docs/lexicon3d.md §3.2, §4)."""
from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np
import torch

from bench.data.scannet import read_unified_pose
from bench.data.synth.scannet3d import random_rigid
from bench.task import ItemScores, Task, TaskResult
from heads.scene3d.registration import (RegistrationHead, apply, farthest_point_sample, registration_loss, rmse,
                                        se3_compare)
from tasks.scene3d.config import RegistrationConfig, default_config
from tasks.scene3d.scenes import SceneSet


@dataclass
class Pair:
    scene: str
    f1: torch.Tensor
    x1: torch.Tensor  # cloud 1, original frame
    f2: torch.Tensor
    x2: torch.Tensor  # cloud 2, original frame (moved by T at use)
    ov1: torch.Tensor
    ov2: torch.Tensor
    T: torch.Tensor  # the scene's pose: x2_moved = R x2 + t


def overlap_flags(idx1, idx2, valid1, valid2, x1, x2, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """(a) vertex identity: a sampled cloud-1 vertex overlaps if cloud 2 saw it too (and vice versa);
    (b) "radius": nearest neighbour in the other (aligned) cloud closer than overlap_radius."""
    if cfg.overlap_rule == "vertex":
        return valid2[idx1].float(), valid1[idx2].float()
    d = torch.cdist(x1.double(), x2.double())
    return (d.min(1).values < cfg.overlap_radius).float(), (d.min(0).values < cfg.overlap_radius).float()


def build_pairs(data: SceneSet, split: str, cfg: RegistrationConfig) -> tuple[list[Pair], int]:
    pairs, skipped = [], 0
    for sid in data.ids[split]:
        pts, file = data.points(split, sid)
        n_views = len(data.views[sid])
        k = cfg.first_views or n_views // 2
        a, b = (0, min(k, n_views)), (min(k, n_views), min(2 * k, n_views))
        if b[0] >= b[1]:
            skipped += 1  # fewer views than the first set: no second cloud
            continue
        f1, v1 = data.lifter.get(sid, pts.coords, file, a)
        f2, v2 = data.lifter.get(sid, pts.coords, file, b)
        xyz = torch.from_numpy(pts.coords).float()
        i1, i2 = torch.nonzero(v1).flatten(), torch.nonzero(v2).flatten()
        if len(i1) < 8 or len(i2) < 8:
            skipped += 1
            continue
        i1 = i1[farthest_point_sample(xyz[i1], cfg.points, seed=cfg.train_seed)]
        i2 = i2[farthest_point_sample(xyz[i2], cfg.points, seed=cfg.train_seed + 1)]
        ov1, ov2 = overlap_flags(i1, i2, v1, v2, xyz[i1], xyz[i2], cfg)
        if ov1.sum() == 0:
            skipped += 1  # disjoint clouds: nothing to register against
            continue
        T = torch.from_numpy(read_unified_pose(data.root, sid)).float()
        pairs.append(Pair(sid, f1[i1], xyz[i1], f2[i2], xyz[i2], ov1, ov2, T))
    return pairs, skipped


def train_head(pairs: list[Pair], dim: int, cfg: RegistrationConfig, log=None) -> RegistrationHead:
    torch.manual_seed(cfg.train_seed)
    model = RegistrationHead(dim, cfg.d_model, cfg.nhead, cfg.layers, cfg.ffn, cfg.zero_init_residual,
                             cfg.overlap_logits)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = cfg.warmup_epochs * len(pairs)  # a few hundred lr 3e-3 steps from random init can stall the decoder
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warm) if warm else 1.0)
    g = torch.Generator().manual_seed(cfg.train_seed)
    rng = np.random.default_rng(cfg.train_seed)
    model.train()
    for epoch in range(cfg.epochs):
        losses = []
        for i in torch.randperm(len(pairs), generator=g).tolist():
            p = pairs[i]
            x1, x2, T = p.x1, apply(p.T, p.x2), p.T
            if cfg.train_pose == "random":  # both clouds moved at random: positions cannot be memorised
                A, B = (torch.from_numpy(random_rigid(rng)).float() for _ in range(2))
                x1, x2, T = apply(A, p.x1), apply(B, p.x2), B @ torch.linalg.inv(A)
            c1, c2, o1, o2 = model(p.f1[None], x1[None], p.f2[None], x2[None])
            loss = registration_loss(c1, c2, o1, o2, x1[None], x2[None], p.ov1, p.ov2, T)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        if log is not None and losses:
            log({"registration_train_loss": statistics.fmean(losses)}, epoch)
    return model


@torch.no_grad()
def evaluate(model: RegistrationHead, pairs: list[Pair], threshold: float) -> tuple[dict, dict]:
    model.eval()
    rows = {}
    for p in pairs:
        x2 = apply(p.T, p.x2)
        c1, c2, o1, o2 = model(p.f1[None], p.x1[None], p.f2[None], x2[None])
        T_pred = model.pose(p.x1[None], x2[None], c1, c2, o1, o2)
        rre, rte = se3_compare(T_pred, p.T)
        err = rmse(T_pred, p.T, p.x1[p.ov1 > 0])
        rows[p.scene] = {"rre_deg": rre, "rte_m": rte, "rmse_m": err, "success": float(err < threshold)}
    mean = {k: statistics.fmean(r[k] for r in rows.values()) for k in ("rre_deg", "rte_m", "rmse_m")}
    mean["rr_at_0.05m"] = 100 * statistics.fmean(r["success"] for r in rows.values())
    return mean, rows


class Registration3D(Task):
    Config = RegistrationConfig

    def __init__(self, meta, synthetic: bool = False):
        super().__init__(meta)
        self.synthetic = synthetic

    def default_config(self):
        return default_config("registration", self.synthetic)

    def run(self, ctx, cfg: RegistrationConfig) -> TaskResult:
        data = SceneSet(ctx, cfg, need_views=2)
        train, skip_t = build_pairs(data, "train", cfg)
        val, skip_v = build_pairs(data, "val", cfg)
        data.log_cache()
        if not train or not val:
            raise ValueError(f"registration: no usable pairs (train {len(train)}, val {len(val)}; "
                             f"skipped {skip_t} + {skip_v} without two overlapping clouds)")
        ctx.log_params(pairs_train=len(train), pairs_val=len(val), pairs_skipped=skip_t + skip_v,
                       overlap_fraction_val=round(float(torch.cat([p.ov1 for p in val]).mean()), 4))
        model = train_head(train, train[0].f1.shape[1], cfg, ctx.log_metrics)
        mean, rows = evaluate(model, val, cfg.rr_threshold_m)
        identity = statistics.fmean(float(rmse(torch.eye(4), p.T, p.x1[p.ov1 > 0]) < cfg.rr_threshold_m) for p in val)
        mean["identity_rr"] = 100 * identity
        mean["train_rr"] = evaluate(model, train, cfg.rr_threshold_m)[0]["rr_at_0.05m"]
        mean["pairs_skipped"] = float(skip_t + skip_v)
        per_pair = {k: np.array([r[k] for r in rows.values()], dtype=np.float64) for k in ("rre_deg", "rte_m", "rmse_m")}
        items = {**{k: ItemScores(v, "mean") for k, v in per_pair.items()},
                 "rr_at_0.05m": ItemScores(np.array([r["success"] for r in rows.values()], dtype=np.float64), "mean", 100.0)}
        return TaskResult(mean, {f"scene:{s}": r for s, r in rows.items()}, items=items)
