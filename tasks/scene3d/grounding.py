"""scanrefer-vg / synth-scanrefer-vg: pick the described object among the scene's ground-truth boxes
(object features pooled from the lifted point features inside each box); Acc@0.25 / Acc@0.5."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np
import torch

from bench.data.scannet import load_instances, object_boxes
from bench.data.scannet_lang import read_scanrefer
from bench.task import ItemScores, Task, TaskResult
from heads.scene3d.grounding import MatchModule, TextTower, aabb_iou, grounding_loss
from tasks.scene3d.config import GroundingConfig, default_config
from tasks.scene3d.scenes import SceneSet


@dataclass
class GroundScene:
    id: str
    feat: torch.Tensor  # (K, C) pooled object features
    boxes: torch.Tensor  # (K, 6)
    ids: list[int]  # instance id of each box
    unique_class: dict[int, bool]  # instance -> only object of its class in the scene
    refs: list[tuple[int, int]]  # (description index, target box index)


def pool_objects(scene, instances: np.ndarray):
    """Mean lifted feature of the seen points inside each instance's axis-aligned box."""
    boxes = object_boxes(scene.points.coords, instances)
    ids = sorted(boxes)
    xyz = torch.from_numpy(scene.points.coords)
    feats = []
    for i in ids:
        b = torch.from_numpy(boxes[i])
        inside = ((xyz >= b[:3]) & (xyz <= b[3:])).all(1) & scene.seen
        feats.append(scene.feat[inside].float().mean(0) if inside.any() else torch.zeros(scene.feat.shape[1]))
    labels = scene.points.labels
    cls = {i: int(np.bincount(labels[instances == i] + 1).argmax()) - 1 for i in ids}
    unique = {i: sum(c == cls[i] for c in cls.values()) == 1 for i in ids}
    return torch.stack(feats), torch.from_numpy(np.stack([boxes[i] for i in ids])).float(), ids, unique


def build(data: SceneSet, split: str, texts: list[str]) -> tuple[list[GroundScene], int]:
    refs = read_scanrefer(data.root / "scanrefer" / f"ScanRefer_filtered_{split}.json")
    by_scene: dict[str, list] = {}
    for r in refs:
        by_scene.setdefault(r.scene_id, []).append(r)
    out, skipped = [], 0
    for i, sid in enumerate(data.ids[split]):
        if sid not in by_scene:
            continue
        scene = data.scene(split, sid, i)
        inst = load_instances(data.root, split, sid, len(scene.points.coords))
        feat, boxes, ids, unique = pool_objects(scene, inst)
        pairs = []
        for r in by_scene[sid]:
            if r.object_id not in ids:
                skipped += 1  # the described object has no points in this scene: counted, not scored
                continue
            texts.append(r.description)
            pairs.append((len(texts) - 1, ids.index(r.object_id)))
        out.append(GroundScene(sid, feat, boxes, ids, unique, pairs))
    skipped += sum(len(v) for s, v in by_scene.items() if s not in set(data.ids[split]))
    return out, skipped


def _batch(s: GroundScene, chunk, words, sent):
    idx = torch.tensor([d for d, _ in chunk])
    B, K = len(chunk), len(s.ids)
    centres = ((s.boxes[:, :3] + s.boxes[:, 3:]) / 2)[None].expand(B, K, 3)
    return (s.feat[None].expand(B, -1, -1), centres, torch.ones(B, K, dtype=torch.bool), words[idx], sent[idx],
            torch.tensor([t for _, t in chunk]))


class Grounding3D(Task):
    Config = GroundingConfig

    def __init__(self, meta, synthetic: bool = False):
        super().__init__(meta)
        self.synthetic = synthetic

    def default_config(self):
        return default_config("grounding", self.synthetic)

    def run(self, ctx, cfg: GroundingConfig) -> TaskResult:
        data = SceneSet(ctx, cfg)
        texts: list[str] = []
        train, skip_t = build(data, "train", texts)
        val, skip_v = build(data, "val", texts)
        data.log_cache()
        if not any(s.refs for s in train) or not any(s.refs for s in val):
            raise ValueError("scanrefer: no usable referring expressions in train or val")
        tower = TextTower(cfg.text_encoder, seed=cfg.train_seed)
        words, sent = tower(texts)
        ctx.log_params(text_encoder_used=tower.label, referrals_train=sum(len(s.refs) for s in train),
                       referrals_val=sum(len(s.refs) for s in val), referrals_skipped=skip_t + skip_v)
        torch.manual_seed(cfg.train_seed)
        model = MatchModule(train[0].feat.shape[1], tower.width, tower.out_dim, cfg.feat_channel, cfg.heads, cfg.depth)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        g = torch.Generator().manual_seed(cfg.train_seed)
        half = cfg.epochs // 2
        for epoch in range(cfg.epochs):
            if epoch >= half:  # LrDecayCallback: cosine from the half-way epoch down to 1e-6
                frac = (epoch - half) / max(1, cfg.epochs - half)
                for grp in opt.param_groups:
                    grp["lr"] = 1e-6 + (cfg.lr - 1e-6) * 0.5 * (1 + math.cos(math.pi * frac))
            model.train()
            losses = []
            for si in torch.randperm(len(train), generator=g).tolist():
                s = train[si]
                order = [s.refs[j] for j in torch.randperm(len(s.refs), generator=g).tolist()]
                for c in range(0, len(order), cfg.chunk):
                    chunk = order[c:c + cfg.chunk]
                    if len(chunk) < 2:  # BatchNorm needs two samples
                        chunk = chunk + chunk
                    feat, centres, valid, w, se, target = _batch(s, chunk, words, sent)
                    scores, oe, sm = model(feat, centres, valid, w, se)
                    loss = grounding_loss(model, scores, oe, sm, target, cfg.contrastive)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    losses.append(float(loss.detach()))
            ctx.log_metrics({"grounding_train_loss": statistics.fmean(losses)}, epoch)
        result = evaluate(model, val, words, sent)
        result.metrics["train_accuracy"] = evaluate(model, train, words, sent).metrics["accuracy"]
        return result


@torch.no_grad()
def evaluate(model: MatchModule, val: list[GroundScene], words, sent) -> TaskResult:
    model.eval()
    hits = {"0.25": [], "0.5": []}
    kind = {"unique": [], "multiple": []}
    chance = []
    for s in val:
        if not s.refs:
            continue
        feat, centres, valid, w, se, target = _batch(s, s.refs, words, sent)
        pred = model(feat, centres, valid, w, se)[0].argmax(-1)
        iou = aabb_iou(s.boxes[pred], s.boxes[target])
        all_iou = aabb_iou(s.boxes[None], s.boxes[target][:, None])  # (B, K)
        for j, (_, t) in enumerate(s.refs):
            hits["0.25"].append(float(iou[j] >= 0.25))
            hits["0.5"].append(float(iou[j] >= 0.5))
            kind["unique" if s.unique_class[s.ids[t]] else "multiple"].append(float(iou[j] >= 0.5))
            chance.append(float((all_iou[j] >= 0.5).float().mean()))
    m = {"accuracy": 100 * statistics.fmean(hits["0.5"]), "acc_at_0.25": 100 * statistics.fmean(hits["0.25"]),
         "chance": 100 * statistics.fmean(chance)}
    for k, v in kind.items():
        if v:
            m[f"accuracy_{k}"] = 100 * statistics.fmean(v)
    items = {"accuracy": hits["0.5"], "acc_at_0.25": hits["0.25"], **{f"accuracy_{k}": v for k, v in kind.items() if v}}
    return TaskResult(m, {f"type:{k}": {"accuracy": 100 * statistics.fmean(v), "n": float(len(v))}
                          for k, v in kind.items() if v},
                      items={k: ItemScores(np.asarray(v, dtype=np.float64), "mean", 100.0) for k, v in items.items()})
