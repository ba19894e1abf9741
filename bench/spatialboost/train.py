"""The SpatialBoost trainer: three LLaVA-style stages (paper §3.1, App. A).

    stage 1  feature alignment       train g_P only                     (captions)
    stage 2  visual instruction      train g_P + f_L                     (instructions + multi-view VQA)
    stage 3  encoder fine-tuning     train g_P + dual-channel attention  (multi-turn spatial CoT);
                                     f_L frozen, gradients flow through it

One process (CPU or one GPU) or `torchrun` (DDP; FSDP2 with ``fsdp=true``)::

    bench sb train --encoder vit-tiny --stage all                      # offline default (tiny LLM)
    torchrun --nproc_per_node=4 -m bench.spatialboost.train --encoder dinov3-vitb16 --llm Qwen/Qwen2-7B --stage all

Config: the typed `TrainConfig` below (paper hyperparameters), then the hyperparameter profile
(`hparams`: ``tiny`` overrides for the random-init toy LLM, every override recorded in
``cfg.overrides``), then a YAML file (``--config``), then ``--set key=value`` (OmegaConf dotlist).
The resolved config is saved next to the checkpoint (config.yaml) and in the checkpoint metadata.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.errors import BenchError

from bench.spatialboost.cli import MODES, OBJECTIVES, STAGES, add_train_arguments  # noqa: E402,F401


@dataclass
class StageConfig:
    lr: float = 2e-5
    global_batch: int = 128  # samples per optimizer step, all ranks together (gradient accumulation fills it)
    micro_batch: int = 4  # samples per forward on one rank
    epochs: int = 1
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_steps: int = 0  # cap on optimizer steps (0 = the full epochs)


@dataclass
class TinyLLM:
    hidden_size: int = 192
    num_layers: int = 3
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 512
    max_positions: int = 4096


@dataclass
class TrainConfig:
    encoder: str = "vit-tiny"
    encoder_weights: str | None = None  # base weights file (default: the zoo's resolution: HF cache)
    encoder_seed: int = 0  # random-init bases only
    name: str | None = None  # output name; default "<encoder>+sb" (ablations: "<encoder>+sb-<mode>")
    out_dir: str | None = None  # default BENCH_HOME/checkpoints/<name>
    resume_dir: str | None = None  # where --stage 2|3 find stage1/stage2 (default: out_dir, then <encoder>+sb)
    # LLM: "auto" = qwen2-tiny for random-init encoders (offline toy), the paper's Qwen2-7B otherwise
    llm: str = "auto"
    tiny_llm: TinyLLM = field(default_factory=TinyLLM)
    # data recipe (bench.spatialboost.data)
    preset: str = "tiny"
    recipe_root: str | None = None  # a recipe folder built elsewhere (has manifest.json); overrides preset
    data_seed: int = 0
    order: str = "forward"
    levels: str = "pixel,object,scene,caption"
    max_length: int = 2048  # text tokens per sample (visual tokens come on top)
    # model
    mode: str = "dual"  # dual (SpatialBoost) | lora | full  (Table 17 / Fig. 6 ablation)
    objective: str = "llm"  # llm (SpatialBoost) | simple-ft (Table 8 baseline: no LLM, see docs)
    lora_rank: int = 8
    lora_alpha: float = 16.0
    vision_layer: int = -1  # which block's patch tokens feed the projector (-1 = last)
    projector: str = "mlp2x_gelu"
    train_resolution: int = 0  # 0 = the encoder's own resolution
    # optimisation (paper: AdamW, cosine, warmup 3%, 1 epoch per stage)
    stage1: StageConfig = field(default_factory=lambda: StageConfig(lr=2e-3, global_batch=256))
    stage2: StageConfig = field(default_factory=lambda: StageConfig(lr=2e-5, global_batch=128))
    stage3: StageConfig = field(default_factory=lambda: StageConfig(lr=2e-5, global_batch=128))
    hparams: str = "auto"  # auto (tiny when the LLM is qwen2-tiny) | paper | tiny
    overrides: list[str] = field(default_factory=list)  # what the profile changed (filled in)
    eval_samples: int = 16  # stage-3 loss on this many fixed samples before/after (0 = off)
    # runtime
    seed: int = 0
    device: str = "auto"
    bf16: bool = True  # autocast bf16 on CUDA (CPU is fp32)
    fsdp: bool = False
    gradient_checkpointing: bool = False  # LLM activation checkpointing (7B runs)
    num_workers: int = 0
    threads: int = 0  # torch CPU threads (0 = auto: 1 when the CPU is already busy, else torch's default)
    save_stages: bool = True  # stage1/stage2 resume points
    log_every: int = 1
    progress: bool = True
    track: bool = True  # MLflow run

    def stage(self, k: int) -> StageConfig:
        return getattr(self, f"stage{k}")


# The tiny profile: the random-init toy LLM has to learn a language from a few hundred samples,
# so batches are small, epochs several and the learning rates larger than the paper's.
TINY_PROFILE: dict[str, Any] = {
    "train_resolution": 112,
    "max_length": 1024,
    "eval_samples": 8,
    "stage1.lr": 2e-3, "stage1.global_batch": 8, "stage1.micro_batch": 8, "stage1.epochs": 2,
    "stage2.lr": 1e-3, "stage2.global_batch": 8, "stage2.micro_batch": 8, "stage2.epochs": 2,
    "stage3.lr": 1e-3, "stage3.global_batch": 8, "stage3.micro_batch": 8, "stage3.epochs": 2,
}


# ------------------------------------------------------------------------------------------ config
def resolve_config(dotlist: list[str] | None = None, yaml_path: str | Path | None = None, **kwargs: Any) -> TrainConfig:
    """Typed defaults <- hparam profile <- YAML <- keyword arguments <- dotlist."""
    from omegaconf import OmegaConf

    schema = OmegaConf.structured(TrainConfig)
    user = OmegaConf.merge(
        OmegaConf.load(str(yaml_path)) if yaml_path else OmegaConf.create({}),
        OmegaConf.create({k: v for k, v in kwargs.items() if v is not None}),
        OmegaConf.from_dotlist(list(dotlist or [])),
    )
    probe = OmegaConf.to_object(OmegaConf.merge(schema, user))
    profile = probe.hparams
    if profile == "auto":
        profile = "tiny" if _llm_spec(probe) == "qwen2-tiny" else "paper"
    if profile not in ("paper", "tiny"):
        raise ValueError(f"hparams must be auto | paper | tiny, got {probe.hparams!r}")
    merged = schema
    overrides: list[str] = []
    if profile == "tiny":
        user_keys = set(_flat_keys(OmegaConf.to_container(user)))
        prof = {k: v for k, v in TINY_PROFILE.items() if k not in user_keys}  # explicit user values win
        for key, value in prof.items():
            old = OmegaConf.select(schema, key)
            if old != value:
                overrides.append(f"{key}: {old} -> {value} (tiny profile)")
        merged = OmegaConf.merge(schema, OmegaConf.from_dotlist([f"{k}={v}" for k, v in prof.items()]))
    cfg: TrainConfig = OmegaConf.to_object(OmegaConf.merge(merged, user))
    cfg.hparams = profile
    cfg.overrides = overrides
    cfg.llm = _llm_spec(cfg)  # record the LLM actually used, not "auto"
    if cfg.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {cfg.mode!r}")
    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {cfg.objective!r}")
    return cfg


def _flat_keys(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.extend(_flat_keys(v, key + ".") if isinstance(v, dict) else [key])
    return out


def _llm_spec(cfg: TrainConfig) -> str:
    from bench.encoders import encoder_card
    from bench.spatialboost.model import PAPER_LLM, TINY_LLM

    if cfg.llm != "auto":
        return cfg.llm
    try:
        random_init = encoder_card(cfg.encoder).random_init and not cfg.encoder_weights
    except Exception:  # noqa: BLE001 - unknown names are reported later with suggestions
        random_init = False
    return TINY_LLM if random_init else PAPER_LLM


def output_name(cfg: TrainConfig) -> str:
    if cfg.name:
        return cfg.name
    suffix = "+sb"
    if cfg.objective == "simple-ft":
        suffix += "-simpleft"
    elif cfg.mode != "dual":
        suffix += f"-{cfg.mode}"
    return f"{cfg.encoder}{suffix}"


def output_dir(cfg: TrainConfig) -> Path:
    from bench.paths import checkpoints_root

    return Path(cfg.out_dir) if cfg.out_dir else checkpoints_root() / output_name(cfg)


def config_dict(cfg: TrainConfig) -> dict:
    return asdict(cfg)


def set_threads(threads: int, device: torch.device) -> int:
    """CPU threads for training. Auto (0): on a CPU whose load average already reaches its core
    count (shared machine), one thread — OpenMP threads spinning against other processes made a
    step ~4x slower on the 2-core dev machine; otherwise torch's default."""
    if threads:
        torch.set_num_threads(threads)
    elif device.type == "cpu":
        try:
            busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
        except OSError:
            busy = False
        if busy:
            torch.set_num_threads(1)
    return torch.get_num_threads()


# -------------------------------------------------------------------------------------------- data
class SquareImageTransform:
    """LLaVA-1.5 'pad' preprocessing: pad to square with the mean colour, resize, normalise.

    Padding (not cropping) keeps every pixel, so the normalised pixel coordinates the spatial
    questions refer to stay inside the image.
    """

    def __init__(self, resolution: int, mean, std, interpolation: str = "bicubic"):
        from torchvision.transforms import v2 as T

        self.resolution, self.mean, self.std = int(resolution), tuple(mean), tuple(std)
        interp = T.InterpolationMode.BICUBIC if interpolation == "bicubic" else T.InterpolationMode.BILINEAR
        self._post = T.Compose([T.PILToTensor(), T.Resize((self.resolution, self.resolution), interpolation=interp,
                                                          antialias=True),
                                T.ToDtype(torch.float32, scale=True), T.Normalize(self.mean, self.std)])

    def __call__(self, image):
        from PIL import Image

        w, h = image.size
        if w != h:
            side = max(w, h)
            fill = tuple(int(round(255 * m)) for m in self.mean)
            canvas = Image.new("RGB", (side, side), fill)
            canvas.paste(image, ((side - w) // 2, (side - h) // 2))
            image = canvas
        return self._post(image)

    def describe(self) -> str:
        return f"pad_square(mean),resize={self.resolution},mean={list(self.mean)},std={list(self.std)}"


def load_recipe_for(cfg: TrainConfig, progress: bool = True, build: bool = True):
    # Import torchvision (-> torch._dynamo -> triton) BEFORE the synthetic scenes may be rendered:
    # importing triton after MuJoCo's offscreen rendering in the same process segfaults here.
    import torchvision.transforms.v2  # noqa: F401

    from bench.spatialboost.data import build_recipe, load_recipe

    if cfg.recipe_root:
        try:
            return load_recipe(cfg.recipe_root)
        except FileNotFoundError as exc:
            raise BenchError(f"no SpatialBoost recipe at {cfg.recipe_root} (manifest.json missing)") from exc
    levels = tuple(x for x in cfg.levels.replace("+", ",").split(",") if x)
    if not build:
        from bench.spatialboost.data import default_out

        root = default_out(cfg.preset, cfg.order, levels, cfg.data_seed)
        return load_recipe(root)  # FileNotFoundError when absent
    return build_recipe(cfg.preset, seed=cfg.data_seed, order=cfg.order, levels=levels, progress=progress)


# --------------------------------------------------------------------------------------- the model
def build_encoder(cfg: TrainConfig):
    """Base encoder of the zoo + the stage-3 adapters of `cfg.mode` (dual / lora / full)."""
    from bench.encoders import load_encoder
    from bench.spatialboost.checkpoint import apply_mode

    encoder = load_encoder(cfg.encoder, weights=cfg.encoder_weights, seed=cfg.encoder_seed)
    base_info = {"name": cfg.encoder, "weights_id": encoder.weights_id, "random_init": bool(encoder.random_init),
                 "seed": cfg.encoder_seed, "weights_path": cfg.encoder_weights}
    layers = apply_mode(encoder, cfg.mode, lora_rank=cfg.lora_rank, lora_alpha=cfg.lora_alpha)
    for p in encoder.parameters():
        p.requires_grad_(False)
    encoder.eval()  # no dropout / drop-path: training changes the adapters, not the regularisation
    return encoder, base_info, layers


def build_llm(cfg: TrainConfig, recipe, device: torch.device):
    """(llm, tokenizer, spec): the tiny random-init Qwen2 on the recipe tokenizer, or a pretrained LLM
    on its own tokenizer (with the image placeholder added)."""
    from bench.spatialboost.data import IMAGE_TOKEN, load_tokenizer
    from bench.spatialboost.model import TINY_LLM, TinyLLMConfig, build_tiny_llm, load_pretrained_llm

    spec = _llm_spec(cfg)
    if spec == TINY_LLM:
        tok = load_tokenizer(recipe)
        t = cfg.tiny_llm
        llm = build_tiny_llm(len(tok), TinyLLMConfig(t.hidden_size, t.num_layers, t.num_heads, t.num_kv_heads,
                                                     t.intermediate_size, t.max_positions), seed=cfg.seed,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        return llm, tok, spec
    from bench.spatialboost.data import CHAT_TEMPLATE

    llm, tok = load_pretrained_llm(spec)
    if tok.convert_tokens_to_ids(IMAGE_TOKEN) in (None, tok.unk_token_id):
        tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    if len(tok) > llm.get_input_embeddings().num_embeddings:
        llm.resize_token_embeddings(len(tok))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if "generation" not in (tok.chat_template or ""):
        # the collator needs {% generation %} markers for the assistant mask; ChatML fits Qwen2
        tok.chat_template = CHAT_TEMPLATE
    return llm, tok, spec


def set_trainable(vlm: nn.Module, stage: int, mode: str) -> list[str]:
    """requires_grad per stage; returns the trainable parameter names (sorted).

    stage 1: projector. stage 2: projector + LLM. stage 3: projector + encoder adapters
    (dual: Attn+ and gates; lora: LoRA A/B; full: the whole encoder); LLM frozen.
    """
    from bench.spatialboost.dual_attention import is_adapter_param

    for p in vlm.parameters():
        p.requires_grad_(False)
    for p in vlm.projector.parameters():
        p.requires_grad_(True)
    if stage == 2:
        for p in vlm.llm.parameters():
            p.requires_grad_(True)
    elif stage == 3:
        for name, p in vlm.encoder.named_parameters():
            if is_adapter_param(name, mode):
                p.requires_grad_(True)
    elif stage != 1:
        raise ValueError(f"stage must be 1, 2 or 3, got {stage}")
    return sorted(n for n, p in vlm.named_parameters() if p.requires_grad)


def cosine_schedule(optimizer, total_steps: int, warmup_ratio: float):
    """Linear warmup (ceil(ratio * total) steps) then cosine decay to 0 (LLaVA / HF 'cosine')."""
    warmup = math.ceil(warmup_ratio * total_steps) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), warmup


# ----------------------------------------------------------------------------------------- trainer
class Trainer:
    """Holds the VLM across stages; rank 0 writes checkpoints and the MLflow run."""

    def __init__(self, cfg: TrainConfig, env=None, run=None):
        from bench.spatialboost.distributed import init_distributed

        self.cfg = cfg
        self.env = env or init_distributed(cfg.device)
        self.device = self.env.device
        self.run = run
        self.out = output_dir(cfg)
        self.log: dict[str, Any] = {"stages": {}}
        self._sharded = False
        self.log["threads"] = set_threads(cfg.threads, self.device)
        from bench.spatialboost.distributed import barrier

        if not self.env.is_main:
            barrier(self.env)  # rank 0 builds the recipe (and the synthetic scenes) first
        self.recipe = load_recipe_for(cfg, progress=cfg.progress and self.env.is_main)
        if self.env.is_main:
            barrier(self.env)
        self.encoder, self.base_info, self.layers = build_encoder(cfg)
        self.llm, self.tokenizer, self.llm_spec = build_llm(cfg, self.recipe, self.device)
        from bench.spatialboost.data import ConversationCollator
        from bench.spatialboost.model import SpatialVLM

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
        from bench.spatialboost.data import LlavaDataset

        return LlavaDataset(self.recipe.stage(stage), self.recipe.image_root, self.transform)

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
        self.vlm.llm.train(stage == 2)
        losses: list[float] = []
        t_stage = time.perf_counter()
        step, micro_i, group_loss, group_tok, t0 = 0, 0, 0.0, 0, time.perf_counter()
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
                micro_i += 1
                if not last_in_group:
                    continue
                if sc.max_grad_norm:
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, sc.max_grad_norm))
                else:
                    grad_norm = float("nan")
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                loss_t = all_reduce_mean(torch.tensor(group_loss, device=self.device), env)
                tok_t = all_reduce_sum(torch.tensor(float(group_tok), device=self.device), env)
                dt = time.perf_counter() - t0
                loss = float(loss_t)
                losses.append(loss)
                if env.is_main and (step % cfg.log_every == 0 or step == total_steps - 1):
                    metrics = {f"stage{stage}_loss": loss, f"stage{stage}_lr": opt.param_groups[0]["lr"],
                               f"stage{stage}_tokens_per_s": float(tok_t) / max(dt, 1e-9),
                               f"stage{stage}_grad_norm": grad_norm}
                    if stage == 3:
                        metrics.update(_gate_metrics(gate_stats(self.vlm.encoder)))
                    self._log_metrics(metrics, step)
                if bar is not None:
                    bar.set_postfix(loss=f"{loss:.3f}")
                    bar.update(1)
                step += 1
                group_loss, group_tok, t0 = 0.0, 0, time.perf_counter()
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

    # --------------------------------------------------------------------------- save/load
    def stage_meta(self) -> dict:
        from bench.spatialboost.data import IMAGE_TOKEN

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
        from bench.spatialboost.checkpoint import load_stage

        from bench.paths import checkpoints_root

        fname = f"stage{stage}.safetensors"
        if self.cfg.resume_dir:
            candidates = [Path(self.cfg.resume_dir) / fname]
        else:  # stages 1-2 do not depend on the stage-3 mode: ablations reuse NAME+sb's resume points
            candidates = [self.out / fname, checkpoints_root() / f"{self.cfg.encoder}+sb" / fname]
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


def _gate_metrics(stats: list[dict[str, float]]) -> dict[str, float]:
    out = {}
    for i, s in enumerate(stats):
        for k in ("mean", "min", "max"):
            out[f"alpha_{k}_l{i:02d}"] = s[k]
    if stats:
        out["alpha_mean_all"] = sum(s["mean"] for s in stats) / len(stats)
    return out


# ------------------------------------------------------------------------------ simple-FT baseline
class DepthPatchDataset(torch.utils.data.Dataset):
    """Stage-3 images with the ground-truth depth their spatial answers were generated from.

    Target per patch: mean log-depth of the valid pixels of that patch (after the same pad-to-square
    + resize as the image); patches with < 50% valid pixels are masked.
    """

    def __init__(self, recipe, transform: "SquareImageTransform", patch_size: int):
        from bench.spatialboost.data import read_llava

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
    from bench.spatialboost.checkpoint import BOOSTED_FILE, save_boosted
    from bench.spatialboost.dual_attention import is_adapter_param

    from bench.features import resolve_device

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


# ------------------------------------------------------------------------------------------ entry
def parse_stages(stage: str | int) -> tuple[int, ...]:
    if str(stage) == "all":
        return STAGES
    k = int(stage)
    if k not in STAGES:
        raise ValueError(f"--stage must be 1, 2, 3 or all, got {stage}")
    return (k,)


def train(cfg: TrainConfig, stages: tuple[int, ...] = STAGES) -> Path | None:
    """Run `stages`; returns the boosted checkpoint path when stage 3 ran (else the last stage file)."""
    from bench.spatialboost.distributed import barrier, init_distributed, shutdown

    if cfg.objective == "simple-ft":
        return train_simple_ft(cfg)
    env = init_distributed(cfg.device)
    torch.manual_seed(cfg.seed)
    try:
        if env.is_main and cfg.track:
            from bench.tracking import Tracker

            with Tracker().run(f"sb-train {output_name(cfg)}", tags={"bench.kind": "sb-train",
                                                                      "bench.sb.stages": ",".join(map(str, stages))},
                               params=_flat_params(cfg)) as run:
                return _train(cfg, stages, env, run)
        return _train(cfg, stages, env, None)
    finally:
        barrier(env)
        shutdown(env)


def _train(cfg: TrainConfig, stages: tuple[int, ...], env, run) -> Path | None:
    from bench.spatialboost.dual_attention import param_growth

    t0 = time.perf_counter()
    tr = Trainer(cfg, env=env, run=run)
    growth = param_growth(tr.encoder) if cfg.mode == "dual" else {}
    tr.log.update({"param_growth": growth, "llm_params": sum(p.numel() for p in tr.llm.parameters()),
                   "wrapped_layers": tr.layers, "stages_run": list(stages), "world_size": env.world_size})
    if run is not None:
        run.log_params(sb_llm=tr.llm_spec, sb_recipe=str(tr.recipe.root), sb_manifest_hash=tr.recipe.manifest_hash,
                       sb_param_growth_pct=round(growth.get("growth_pct", 0.0), 3),
                       sb_llm_params=tr.log["llm_params"], sb_world_size=env.world_size,
                       sb_overrides="; ".join(cfg.overrides) or "none")
    first = stages[0]
    if first > 1:
        tr.resume_from(first - 1)
    tr.write_config()
    result = None
    for stage in stages:
        tr.run_stage(stage)
        if stage < 3:
            result = tr.save_stage(stage)
        else:
            result = tr.save_boosted()
    tr.log["seconds_total"] = time.perf_counter() - t0
    tr.write_config()
    if run is not None and env.is_main:
        run.log_metrics({"seconds_total": tr.log["seconds_total"]})
        run.log_file(tr.out / "config.yaml", folder="sb")
        run.log_file(tr.out / "train_log.json", folder="sb")
    if env.is_main and cfg.progress:
        print(f"[sb] done in {tr.log['seconds_total']:.0f}s -> {result}", file=sys.stderr, flush=True)
    return result


def _flat_params(cfg: TrainConfig) -> dict[str, Any]:
    out = {}

    def walk(d, prefix):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v if not isinstance(v, list) else "; ".join(map(str, v))
    walk(config_dict(cfg), "")
    out["output_name"] = output_name(cfg)
    return out


def config_from_args(args) -> TrainConfig:
    keys = ("encoder", "preset", "order", "levels", "recipe_root", "llm", "mode", "objective", "hparams",
            "encoder_weights", "name", "device", "fsdp", "seed", "threads")
    kw = {k: getattr(args, k, None) for k in keys}
    if getattr(args, "no_track", False):
        kw["track"] = False
    if getattr(args, "no_progress", False):
        kw["progress"] = False
    return resolve_config(list(getattr(args, "set", []) or []), getattr(args, "config", None), **kw)


def cmd_train(args) -> int:
    cfg = config_from_args(args)
    path = train(cfg, parse_stages(args.stage))
    if path is not None and int(os.environ.get("RANK", "0")) == 0:
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.spatialboost.train ...` (what torchrun launches)."""
    from bench.registry import UnknownNameError

    p = argparse.ArgumentParser(prog="python -m bench.spatialboost.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(p)
    args = p.parse_args(argv)
    try:
        return cmd_train(args)
    except (BenchError, UnknownNameError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
