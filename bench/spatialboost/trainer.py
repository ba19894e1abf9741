"""The SpatialBoost trainer loop: one `Trainer` holds the VLM across the three stages (paper §3.1).

    stage 1  feature alignment       train g_P only                     (captions)
    stage 2  visual instruction      train g_P + f_L                     (instructions + multi-view VQA)
    stage 3  encoder fine-tuning     train g_P + dual-channel attention  (multi-turn spatial CoT);
                                     f_L frozen, gradients flow through it

One process (CPU or one GPU) or `torchrun` (DDP; FSDP2 with ``fsdp=true``); rank 0 logs and writes
checkpoints. Entry points: `bench.spatialboost.train`.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.errors import BenchError
from bench.spatialboost.build import build_encoder, build_llm, load_recipe_for, set_threads, set_trainable
from bench.spatialboost.config import TrainConfig, config_dict, method_name, output_dir
from bench.spatialboost.diagnostics import gate_metrics, metric_row
from bench.vlm.transforms import SquareImageTransform


def cosine_schedule(optimizer, total_steps: int, warmup_ratio: float):
    """Linear warmup (ceil(ratio * total) steps) then cosine decay to 0 (LLaVA / HF 'cosine')."""
    warmup = math.ceil(warmup_ratio * total_steps) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), warmup


class Trainer:
    """Holds the VLM across stages; rank 0 writes checkpoints and the MLflow run."""

    def __init__(self, cfg: TrainConfig, env=None, run=None):
        from bench.spatialboost.distributed import barrier, init_distributed

        self.cfg = cfg
        self.env = env or init_distributed(cfg.device)
        self.device = self.env.device
        self.run = run
        self.out = output_dir(cfg)
        self.log: dict[str, Any] = {"stages": {}}
        self._sharded = False
        self.log["threads"] = set_threads(cfg.threads, self.device)
        if not self.env.is_main:
            barrier(self.env)  # rank 0 builds the recipe (and the synthetic scenes) first
        self.recipe = load_recipe_for(cfg, progress=cfg.progress and self.env.is_main)
        if self.env.is_main:
            barrier(self.env)
        self.encoder, self.base_info, self.layers = build_encoder(cfg)
        self.llm, self.tokenizer, self.llm_spec = build_llm(cfg, self.recipe)
        from bench.vlm.collate import ConversationCollator
        from bench.vlm.model import SpatialVLM

        self.collator = ConversationCollator(self.tokenizer, max_length=cfg.max_length)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + 1)
            self.vlm = SpatialVLM(self.encoder, self.llm, self.collator.image_token_id,
                                  vision_layer=cfg.vision_layer, projector=cfg.projector)
        if cfg.gradient_checkpointing and hasattr(self.llm, "gradient_checkpointing_enable"):
            self.llm.gradient_checkpointing_enable()
        self.vlm.to(self.device)
        pp = self.encoder.preprocess
        self.transform = SquareImageTransform(cfg.train_resolution or pp.resolution, pp.mean, pp.std, pp.interpolation)
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" and cfg.bf16
                         else None)

    # ------------------------------------------------------------------------------ helpers
    def _ac(self):
        import contextlib

        return self.autocast if self.autocast is not None else contextlib.nullcontext()

    def dataset(self, stage: int):
        from bench.vlm.llava import LlavaDataset, sample_images

        ds = LlavaDataset(self.recipe.stage(stage), self.recipe.image_root, self.transform)
        if stage == 2 and self.cfg.views == "single":  # Table 7: stage 2 without its multi-view VQA samples
            ds.samples = [s for s in ds.samples if len(sample_images(s)) == 1]
        if stage == 2 and self.cfg.stage2_spatial:  # the random-init LLM learns the spatial language first
            ds = torch.utils.data.ConcatDataset([ds, LlavaDataset(self.recipe.stage(3), self.recipe.image_root,
                                                                  self.transform)])
        return ds

    def loader(self, ds, micro_batch: int, epoch: int, shuffle: bool = True):
        from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

        if self.env.distributed:
            sampler = DistributedSampler(ds, self.env.world_size, self.env.rank, shuffle=shuffle, seed=self.cfg.seed)
            sampler.set_epoch(epoch)
        elif shuffle:
            g = torch.Generator().manual_seed(self.cfg.seed * 1000 + epoch)
            sampler = RandomSampler(ds, generator=g)
        else:
            sampler = SequentialSampler(ds)
        return DataLoader(ds, batch_size=micro_batch, sampler=sampler, collate_fn=self.collator,
                          num_workers=self.cfg.num_workers, persistent_workers=False)

    def _to_device(self, batch: dict) -> dict:
        d = self.device
        return {"input_ids": batch["input_ids"].to(d), "attention_mask": batch["attention_mask"].to(d),
                "labels": batch["labels"].to(d), "images": [im.to(d, non_blocking=True) for im in batch["images"]]}

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self.run is not None and self.env.is_main:
            self.run.log_metrics(metrics, step=step)

    @torch.no_grad()
    def eval_loss(self, stage: int, n: int) -> float:
        if n <= 0:
            return float("nan")
        ds = self.dataset(stage)
        idx = list(range(min(n, len(ds))))
        sub = torch.utils.data.Subset(ds, idx)
        total, count = 0.0, 0
        for batch in self.loader(sub, self.cfg.stage(stage).micro_batch, 0, shuffle=False):
            with self._ac():
                out = self.vlm(**self._to_device(batch))
            k = int(out["n_supervised"])
            total += float(out["loss"]) * k
            count += k
        from bench.spatialboost.distributed import all_reduce_sum

        sums = all_reduce_sum(torch.tensor([total, float(count)], dtype=torch.float64, device=self.device), self.env)
        return float(sums[0] / sums[1].clamp(min=1))

    # -------------------------------------------------------------------------------- stage
    def run_stage(self, stage: int) -> dict:
        from bench.spatialboost.distributed import all_reduce_mean, all_reduce_sum, no_grad_sync, wrap_ddp, wrap_fsdp
        from bench.spatialboost.dual_attention import gate_stats

        cfg, sc, env = self.cfg, self.cfg.stage(stage), self.env
        names = set_trainable(self.vlm, stage, cfg.mode)
        params = [p for p in self.vlm.parameters() if p.requires_grad]
        n_train = sum(p.numel() for p in params)
        model: nn.Module = self.vlm
        if env.distributed and cfg.fsdp:
            if not self._sharded:  # FSDP2 shards in place, once; requires_grad is toggled per stage
                wrap_fsdp(self.vlm, env, cfg.bf16 and self.device.type == "cuda")
                self._sharded = True
            params = [p for p in model.parameters() if p.requires_grad]
        elif env.distributed:  # DDP buckets the parameters that require grad: a fresh wrapper per stage
            model = wrap_ddp(self.vlm, env, find_unused=cfg.vision_layer != -1)  # blocks after it get no grad
            params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": sc.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=sc.lr, betas=(0.9, 0.999))
        ds = self.dataset(stage)
        per_rank = math.ceil(len(ds) / env.world_size)
        micro_per_epoch = math.ceil(per_rank / sc.micro_batch)
        accum = max(1, sc.global_batch // (sc.micro_batch * env.world_size))
        total_micro = micro_per_epoch * sc.epochs
        total_steps = math.ceil(total_micro / accum)
        if sc.max_steps:
            total_steps = min(total_steps, sc.max_steps)
            total_micro = min(total_micro, total_steps * accum)
        sched, warmup = cosine_schedule(opt, total_steps, sc.warmup_ratio)
        info = {"trainable": len(names), "trainable_params": n_train, "samples": len(ds), "accum": accum,
                "effective_global_batch": accum * sc.micro_batch * env.world_size, "optimizer_steps": total_steps,
                "warmup_steps": warmup, "lr": sc.lr, "epochs": sc.epochs}
        if env.is_main and cfg.progress:
            print(f"[sb] stage {stage}: {len(ds)} samples, {total_steps} steps x {info['effective_global_batch']} "
                  f"(micro {sc.micro_batch} x accum {accum} x {env.world_size} ranks), lr {sc.lr:g}, "
                  f"{n_train / 1e6:.2f}M trainable params", file=sys.stderr, flush=True)
        if stage == 3 and cfg.eval_samples:
            info["eval_loss_before"] = self.eval_loss(3, cfg.eval_samples)
        monitor, cut = self._stage3_monitor() if stage == 3 else (None, None)
        self.vlm.llm.train(stage == 2)
        losses: list[float] = []
        t_stage = time.perf_counter()
        step, micro_i, group_loss, group_tok, group_sup, t0 = 0, 0, 0.0, 0, 0, time.perf_counter()
        bar = None
        if env.is_main and cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total_steps, desc=f"stage {stage}", unit="step", file=sys.stderr)
        done = False
        for epoch in range(sc.epochs):
            for batch in self.loader(ds, sc.micro_batch, epoch):
                if micro_i >= total_micro:
                    done = True
                    break
                group_start = (micro_i // accum) * accum
                group_size = min(accum, total_micro - group_start)
                last_in_group = (micro_i - group_start) == group_size - 1
                b = self._to_device(batch)
                with no_grad_sync(model, env.distributed and not last_in_group):
                    with self._ac():
                        out = model(**b)
                    (out["loss"] / group_size).backward()
                group_loss += float(out["loss"].detach()) / group_size
                group_tok += int(out["n_tokens"])
                group_sup += int(out["n_supervised"])
                micro_i += 1
                if not last_in_group:
                    continue
                enc_grad = monitor.grad_norm() if monitor is not None else 0.0
                if sc.max_grad_norm:
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, sc.max_grad_norm))
                else:
                    grad_norm = float("nan")
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                loss_t = all_reduce_mean(torch.tensor(group_loss, device=self.device), env)
                tok_t = all_reduce_sum(torch.tensor(float(group_tok), device=self.device), env)
                if monitor is not None:
                    sup = all_reduce_sum(torch.tensor(float(group_sup), device=self.device), env)
                    monitor.step(enc_grad, int(sup))
                dt = time.perf_counter() - t0
                loss = float(loss_t)
                losses.append(loss)
                if env.is_main and (step % cfg.log_every == 0 or step == total_steps - 1):
                    metrics = {f"stage{stage}_loss": loss, f"stage{stage}_lr": opt.param_groups[0]["lr"],
                               f"stage{stage}_tokens_per_s": float(tok_t) / max(dt, 1e-9),
                               f"stage{stage}_grad_norm": grad_norm}
                    if stage == 3:
                        metrics.update(gate_metrics(gate_stats(self.vlm.encoder)))
                        metrics.update(metric_row(monitor.history[-1]))
                    self._log_metrics(metrics, step)
                if bar is not None:
                    bar.set_postfix(loss=f"{loss:.3f}")
                    bar.update(1)
                step += 1
                group_loss, group_tok, group_sup, t0 = 0.0, 0, 0, time.perf_counter()
                if step >= total_steps:
                    done = True
                    break
            if done:
                break
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - t_stage
        self.vlm.llm.train(False)
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        info.update({"losses": losses, "seconds": elapsed, "steps_done": step})
        if stage == 3:
            if cfg.eval_samples:
                info["eval_loss_after"] = self.eval_loss(3, cfg.eval_samples)
            info["gates"] = gate_stats(self.vlm.encoder)
            info["diagnostics"] = self._finish_stage3(monitor, cut)
        if losses:
            w = max(1, len(losses) // 4)
            info["loss_first"] = sum(losses[:w]) / w
            info["loss_last"] = sum(losses[-w:]) / w
        self.log["stages"][str(stage)] = info
        if env.is_main and self.run is not None:
            summary = {f"stage{stage}_seconds": elapsed}
            for k in ("loss_first", "loss_last", "eval_loss_before", "eval_loss_after"):
                if k in info:
                    summary[f"stage{stage}_{k}"] = info[k]
            self.run.log_metrics(summary, step=step)
            self.run.log_json(f"stage{stage}_trainable.json", names, folder="sb")
        return info

    def _stage3_monitor(self):
        from bench.spatialboost.diagnostics import Stage3Monitor, cut_encoder_gradient

        cut = cut_encoder_gradient(self.vlm.encoder) if self.cfg.cut_encoder_grad else None  # TEST-ONLY switch
        return Stage3Monitor(self.vlm.encoder, self.cfg.mode), cut

    def _finish_stage3(self, monitor, cut) -> dict:
        """Diagnostics summary, plot (MLflow artifact) and health metric of stage 3."""
        from bench.spatialboost.diagnostics import plot

        if cut is not None:
            cut.remove()
        summary = monitor.summary()
        if self.env.is_main:
            path = plot(self.out / "stage3_diagnostics.png", summary, f"{self.cfg.encoder} ({self.cfg.mode})")
            if self.run is not None:
                self.run.log_metrics({"stage3_healthy": float(summary["health"]["ok"])})
                if path is not None:
                    self.run.log_file(path, folder="sb")
        return summary

    # --------------------------------------------------------------------------- save/load
    def stage_meta(self) -> dict:
        from bench.vlm.tokenizer import IMAGE_TOKEN

        return {"llm": self.llm_spec, "tiny_llm": json.dumps(asdict(self.cfg.tiny_llm)),
                "manifest_hash": self.recipe.manifest_hash, "base_encoder": self.cfg.encoder,
                "base_weights_id": self.base_info["weights_id"], "mode": self.cfg.mode, "image_token": IMAGE_TOKEN,
                "config": json.dumps(config_dict(self.cfg), sort_keys=True, default=str)}

    def save_stage(self, stage: int) -> Path | None:
        from bench.spatialboost.checkpoint import save_stage

        if not self.cfg.save_stages:
            return None
        path = self.out / f"stage{stage}.safetensors"
        proj, llm = _gathered(self.vlm.projector, self.env), (_gathered(self.vlm.llm, self.env) if stage >= 2 else None)
        if self.env.is_main:
            save_stage(path, stage=stage, projector=proj, llm=llm, meta=self.stage_meta())
        return path

    def resume_from(self, stage: int) -> None:
        """Load the outputs of `stage` (1 or 2) written by an earlier command."""
        from bench.paths import checkpoints_root
        from bench.spatialboost.checkpoint import load_stage

        fname = f"stage{stage}.safetensors"
        if self.cfg.resume_dir:
            candidates = [Path(self.cfg.resume_dir) / fname]
        else:  # stages 1-2 do not depend on the stage-3 mode: ablations reuse NAME+sb's resume points
            candidates = [self.out / fname, checkpoints_root() / method_name(self.cfg) / fname]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            where = " or ".join(map(str, candidates))
            raise BenchError(f"stage {stage + 1} needs the output of stage {stage} ({where}): run "
                             f"`bench sb train --encoder {self.cfg.encoder} --stage {stage}` first (or --stage all)")
        if self.env.is_main and self.cfg.progress:
            print(f"[sb] resuming from {path}", file=sys.stderr, flush=True)
        self.log["resumed_from"] = str(path)
        meta = load_stage(path, self.vlm.projector, self.vlm.llm if stage >= 2 else None)
        for key in ("manifest_hash", "base_weights_id", "llm"):
            mine = self.stage_meta()[key]
            if meta.get(key) != mine:
                raise BenchError(f"{path} was trained with {key}={meta.get(key)!r}, this run has {mine!r}: "
                                 "rerun the earlier stages with the same settings")

    def save_boosted(self) -> Path:
        from bench.spatialboost.checkpoint import BOOSTED_FILE, save_boosted

        path = self.out / BOOSTED_FILE
        enc = _gathered(self.vlm.encoder, self.env)
        proj = _gathered(self.vlm.projector, self.env)
        if self.env.is_main:
            save_boosted(path, enc, proj, mode=self.cfg.mode, objective=self.cfg.objective,
                         base_name=self.cfg.encoder, base_weights_id=self.base_info["weights_id"],
                         base_random_init=self.base_info["random_init"], base_seed=self.cfg.encoder_seed,
                         base_weights_path=self.cfg.encoder_weights, config=config_dict(self.cfg),
                         manifest_hash=self.recipe.manifest_hash, layers=self.layers,
                         lora_rank=self.cfg.lora_rank if self.cfg.mode == "lora" else None,
                         lora_alpha=self.cfg.lora_alpha if self.cfg.mode == "lora" else None,
                         vision_layer=self.cfg.vision_layer, projector_kind=self.cfg.projector)
        return path

    def write_config(self) -> None:
        if not self.env.is_main:
            return
        from omegaconf import OmegaConf

        from bench.io import atomic_path, write_json

        self.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.out / "config.yaml") as tmp:
            tmp.write_text(OmegaConf.to_yaml(OmegaConf.structured(self.cfg)))
        write_json(self.out / "train_log.json", {"config": config_dict(self.cfg), "llm": self.llm_spec,
                                                 "recipe": str(self.recipe.root),
                                                 "manifest_hash": self.recipe.manifest_hash, **self.log})


def _gathered(module: nn.Module, env) -> nn.Module:
    """A module whose state_dict holds full tensors (FSDP2 DTensors are gathered)."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover
        return module
    if not any(isinstance(p, DTensor) for p in module.parameters()):
        return module

    class _Full(nn.Module):
        def __init__(self, src):
            super().__init__()
            self._sd = {k: (v.full_tensor() if isinstance(v, DTensor) else v) for k, v in src.state_dict().items()}
            self.embed_dim = getattr(src, "embed_dim", None)

        def state_dict(self, *a, **k):  # noqa: D401 - mimic nn.Module
            return dict(self._sd)

    return _Full(module)


__all__ = ["Trainer", "cosine_schedule"]
