"""What a SpatialBoost run is built from: the data recipe, the base encoder with its stage-3 adapters,
the LLM with its tokenizer, and which parameters train in which stage."""
from __future__ import annotations

import os

import torch
from torch import nn

from bench.errors import BenchError
from bench.spatialboost.config import TrainConfig, llm_spec, recipe_levels


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


def load_recipe_for(cfg: TrainConfig, progress: bool = True, build: bool = True):
    """The run's recipe: ``cfg.recipe_root``, else the preset's (built here when absent, unless
    ``build=False``: then `FileNotFoundError`)."""
    # Import torchvision (-> torch._dynamo -> triton) BEFORE the synthetic scenes may be rendered:
    # importing triton after MuJoCo's offscreen rendering in the same process segfaults here.
    import torchvision.transforms.v2  # noqa: F401

    from bench.spatialboost.data import build_recipe, default_out, load_recipe

    if cfg.recipe_root:
        try:
            return load_recipe(cfg.recipe_root)
        except FileNotFoundError as exc:
            raise BenchError(f"no SpatialBoost recipe at {cfg.recipe_root} (manifest.json missing)") from exc
    levels = recipe_levels(cfg)
    if not build:
        return load_recipe(default_out(cfg.preset, cfg.order, levels, cfg.data_seed))  # FileNotFoundError when absent
    return build_recipe(cfg.preset, seed=cfg.data_seed, order=cfg.order, levels=levels, progress=progress)


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


def build_llm(cfg: TrainConfig, recipe):
    """(llm, tokenizer, spec): the tiny random-init Qwen2 on the recipe tokenizer, or a pretrained LLM
    on its own tokenizer (with the image placeholder added)."""
    from bench.vlm.llm import TINY_LLM, build_tiny_llm, load_pretrained_llm, prepare_for_images
    from bench.vlm.tokenizer import load_tokenizer

    spec = llm_spec(cfg)
    if spec == TINY_LLM:
        tok = load_tokenizer(recipe)
        llm = build_tiny_llm(len(tok), cfg.tiny_llm, seed=cfg.seed, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)
        return llm, tok, spec
    llm, tok = load_pretrained_llm(spec)
    prepare_for_images(llm, tok)
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


__all__ = ["build_encoder", "build_llm", "load_recipe_for", "set_threads", "set_trainable"]
