"""The simple-FT baseline (paper Table 8): fine-tune the encoder WITHOUT the LLM on a plain dense objective.

See `train_simple_ft` and docs/spatialboost.md ("Simple FT").
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from bench.errors import BenchError
from bench.spatialboost.build import build_encoder, load_recipe_for, set_threads
from bench.spatialboost.config import TrainConfig, config_dict, output_dir
from bench.spatialboost.trainer import cosine_schedule
from bench.vlm.transforms import SquareImageTransform


class DepthPatchDataset(torch.utils.data.Dataset):
    """Stage-3 images with the ground-truth depth their spatial answers were generated from.

    Target per patch: mean log-depth of the valid pixels of that patch (after the same pad-to-square
    + resize as the image); patches with < 50% valid pixels are masked.
    """

    def __init__(self, recipe, transform: SquareImageTransform, patch_size: int):
        from bench.vlm.llava import read_llava

        self.transform, self.patch = transform, int(patch_size)
        synth = Path(recipe.manifest.get("synth", {}).get("root", ""))
        scenes = {p.parent.name: p.parent for p in synth.glob("scenes/**/scene.json")} if synth.is_dir() else {}
        self.items: list[tuple[Path, Path, float]] = []
        seen = set()
        for sample in read_llava(recipe.stage3):
            imgs = sample.get("image")
            for rel in ([imgs] if isinstance(imgs, str) else list(imgs or [])):
                parts = Path(rel).parts
                if rel in seen or len(parts) != 2 or parts[0] not in scenes:
                    continue  # virtual (rendered-in-between) views have no ground-truth depth here
                scene_dir = scenes[parts[0]]
                meta = json.loads((scene_dir / "scene.json").read_text())
                cams = {str(c["index"]): c for c in meta.get("cameras", [])}
                cam = cams.get(Path(rel).stem)
                if cam is None:
                    continue
                seen.add(rel)
                scale = float(meta.get("depth_scale", 1000))
                self.items.append((recipe.image_root / rel, scene_dir / cam["depth"], scale))
        if not self.items:
            raise BenchError("simple-FT needs ground-truth depth for the stage-3 images; "
                             f"none found under {synth}/scenes")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        import numpy as np
        import torch.nn.functional as F
        from PIL import Image

        img_path, depth_path, scale = self.items[i]
        with Image.open(img_path) as im:
            image = self.transform(im.convert("RGB"))
        with Image.open(depth_path) as dm:
            depth = torch.from_numpy(np.asarray(dm, dtype=np.float32).copy()) / scale
        h, w = depth.shape
        side = max(h, w)
        canvas = torch.zeros(side, side)
        canvas[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = depth
        r = self.transform.resolution
        d = F.interpolate(canvas[None, None], size=(r, r), mode="nearest")[0, 0]
        valid = (d > 0).float()
        logd = torch.where(d > 0, d.clamp(min=1e-3).log(), torch.zeros_like(d))
        p = self.patch
        num = F.avg_pool2d((logd * valid)[None, None], p)[0, 0]
        den = F.avg_pool2d(valid[None, None], p)[0, 0]
        target = num / den.clamp(min=1e-6)
        return image, target, den > 0.5


def train_simple_ft(cfg: TrainConfig) -> Path:
    """Table-8 baseline: fine-tune the encoder WITHOUT the LLM on a plain dense objective.

    The same images as stage 3 and the same ground truth their spatial answers were written from,
    but supervised directly: a linear head on the patch tokens (block `vision_layer`) regresses
    per-patch log-depth (L1). Trainable: the encoder adapters of `cfg.mode` (dual by default, the
    same parameters SpatialBoost trains) + the head; optimiser / schedule / batch = stage 3's.
    The head is discarded; the encoder is saved like a SpatialBoost one (objective "simple-ft").
    """
    from bench.features import resolve_device
    from bench.spatialboost.checkpoint import BOOSTED_FILE, save_boosted
    from bench.spatialboost.dual_attention import is_adapter_param

    device = resolve_device(cfg.device)
    set_threads(cfg.threads, device)
    torch.manual_seed(cfg.seed)
    recipe = load_recipe_for(cfg, progress=cfg.progress)
    encoder, base_info, layers = build_encoder(cfg)
    for name, p in encoder.named_parameters():
        p.requires_grad_(is_adapter_param(name, cfg.mode))
    pp = encoder.preprocess
    transform = SquareImageTransform(cfg.train_resolution or pp.resolution, pp.mean, pp.std, pp.interpolation)
    ds = DepthPatchDataset(recipe, transform, pp.patch_size)
    head = nn.Linear(encoder.embed_dim, 1)
    encoder.to(device)
    head.to(device)
    sc = cfg.stage3
    params = [p for p in encoder.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=sc.lr, weight_decay=sc.weight_decay)
    accum = max(1, sc.global_batch // sc.micro_batch)
    steps_per_epoch = math.ceil(math.ceil(len(ds) / sc.micro_batch) / accum)
    total = steps_per_epoch * sc.epochs if not sc.max_steps else min(sc.max_steps, steps_per_epoch * sc.epochs)
    sched, _ = cosine_schedule(opt, total, sc.warmup_ratio)
    losses, step, t0 = [], 0, time.perf_counter()
    g = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(sc.epochs):
        loader = torch.utils.data.DataLoader(ds, batch_size=sc.micro_batch, shuffle=True, generator=g,
                                             num_workers=cfg.num_workers)
        batches = list(loader)
        for i in range(0, len(batches), accum):
            group = batches[i:i + accum]
            total_loss = 0.0
            for image, target, valid in group:
                out = encoder(image.to(device), n_last_blocks=-cfg.vision_layer).blocks[0].patches
                pred = head(out).squeeze(-1)
                err = (pred - target.to(device)).abs() * valid.to(device)
                loss = err.sum() / valid.sum().clamp(min=1)
                (loss / len(group)).backward()
                total_loss += float(loss.detach()) / len(group)
            if sc.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, sc.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(total_loss)
            step += 1
            if step >= total:
                break
        if step >= total:
            break
    out_dir = output_dir(cfg)
    path = out_dir / BOOSTED_FILE
    save_boosted(path, encoder, None, mode=cfg.mode, objective="simple-ft", base_name=cfg.encoder,
                 base_weights_id=base_info["weights_id"], base_random_init=base_info["random_init"],
                 base_seed=cfg.encoder_seed, base_weights_path=cfg.encoder_weights, config=config_dict(cfg),
                 manifest_hash=recipe.manifest_hash, layers=layers,
                 lora_rank=cfg.lora_rank if cfg.mode == "lora" else None,
                 lora_alpha=cfg.lora_alpha if cfg.mode == "lora" else None, vision_layer=cfg.vision_layer)
    from bench.io import write_json

    write_json(out_dir / "train_log.json", {"config": config_dict(cfg), "objective": "simple-ft", "losses": losses,
                                            "samples": len(ds), "seconds": time.perf_counter() - t0})
    return path


__all__ = ["DepthPatchDataset", "train_simple_ft"]
