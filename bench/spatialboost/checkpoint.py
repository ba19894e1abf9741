"""SpatialBoost checkpoints (safetensors only; metadata is a dict of strings).

``BENCH_HOME/checkpoints/<NAME>+sb/``::

    boosted.safetensors   the boosted encoder: Attn+ weights + gates (dual), LoRA A/B (lora) or the
                          whole encoder (full), and the projector (key prefixes ``encoder.`` / ``projector.``)
    stage1.safetensors    projector after stage 1 (resume point for ``--stage 2``)
    stage2.safetensors    projector + LLM after stage 2 (resume point for ``--stage 3``)
    config.yaml           the resolved training config
    train_log.json        per-stage loss curves, timings, gate statistics

Metadata of ``boosted.safetensors``: ``format``, ``mode``, ``objective``, ``base_encoder``,
``base_weights_id``, ``base_random_init``, ``base_seed``, ``base_weights_path``, ``config`` (JSON of
the resolved training config), ``manifest_hash`` (the data recipe), ``layers`` (JSON list of wrapped
attention paths), ``lora_rank``/``lora_alpha``, ``projector``, ``vision_layer``, ``code_version``.
Loading rebuilds the base encoder, checks its ``weights_id`` against the recorded one (a boosted
encoder on the wrong base is an error, never a silent mismatch), applies the same wrapping and
loads the adapter tensors strictly.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.encoders.base import Encoder
from bench.errors import BenchError
from bench.io import atomic_path

FORMAT = "spatialboost-bench/boosted-v1"
STAGE_FORMAT = "spatialboost-bench/stage-v1"
BOOSTED_FILE = "boosted.safetensors"


class CheckpointError(BenchError):
    """A checkpoint that cannot be used (wrong format, wrong base encoder, missing tensors)."""


def _tensors(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _save(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> str:
    from safetensors.torch import save_file

    strs = {k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in meta.items() if v is not None}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=strs)
    return file_sha256(path)


def _unreadable(path: Path, exc: BaseException) -> CheckpointError:
    if isinstance(exc, FileNotFoundError):
        return CheckpointError(f"{path}: no such checkpoint file")
    try:
        size = path.stat().st_size
    except OSError:
        size = None
    if size == 0:
        return CheckpointError(f"{path}: empty checkpoint file (0 bytes): the save or copy did not finish; "
                               f"delete it and retrain")
    return CheckpointError(f"{path}: unreadable checkpoint, truncated or not a safetensors file ({exc}); "
                           f"delete it and retrain")


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors checkpoint; an unreadable file is a `CheckpointError` naming it."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # SafetensorError (header too small / incomplete / garbage), OSError
        raise _unreadable(path, exc) from None


def read_tensors(path: str | Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors under `prefix` (prefix stripped); an unreadable file is a `CheckpointError` naming it."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        sd = load_file(str(path))
    except Exception as exc:
        raise _unreadable(path, exc) from None
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


# ------------------------------------------------------------------------------- boosted encoder
def save_boosted(path: str | Path, encoder: Encoder, projector: nn.Module | None, *, mode: str, objective: str,
                 base_name: str, base_weights_id: str, base_random_init: bool, base_seed: int,
                 base_weights_path: str | None, config: dict, manifest_hash: str, layers: list[str],
                 lora_rank: int | None = None, lora_alpha: float | None = None, vision_layer: int = -1,
                 projector_kind: str = "mlp2x_gelu") -> str:
    """Write the boosted encoder; returns the file's sha256."""
    from bench.spatialboost.dual_attention import adapter_state_dict
    from bench.tracking import code_version

    tensors = _tensors(adapter_state_dict(encoder, mode), "encoder.")
    if projector is not None:
        tensors.update(_tensors(projector.state_dict(), "projector."))
    meta = {
        "format": FORMAT, "mode": mode, "objective": objective, "base_encoder": base_name,
        "base_weights_id": base_weights_id, "base_random_init": "true" if base_random_init else "false",
        "base_seed": str(int(base_seed)), "base_weights_path": base_weights_path,
        "config": json.dumps(config, sort_keys=True, default=str), "manifest_hash": manifest_hash,
        "layers": json.dumps(layers), "lora_rank": None if lora_rank is None else str(lora_rank),
        "lora_alpha": None if lora_alpha is None else str(lora_alpha), "vision_layer": str(vision_layer),
        "projector": projector_kind, "embed_dim": str(encoder.embed_dim), "code_version": code_version(),
    }
    return _save(Path(path), tensors, meta)


def apply_mode(encoder: Encoder, mode: str, *, lora_rank: int = 8, lora_alpha: float = 16.0) -> list[str]:
    """Wrap the encoder for `mode` (dual: dual-channel attention; lora: LoRA on attention; full: nothing)."""
    from bench.spatialboost.dual_attention import apply_lora, find_attention_layers, wrap_dual_channel

    if mode == "dual":
        return wrap_dual_channel(encoder, encoder.embed_dim, expected_layers=encoder.num_blocks)
    if mode == "lora":
        return apply_lora(encoder, lora_rank, lora_alpha, expected_layers=encoder.num_blocks)
    if mode == "full":
        return [p for p, _ in find_attention_layers(encoder)]
    raise ValueError(f"unknown mode {mode!r} (dual | lora | full)")


def load_boosted_encoder(path: str | Path, seed: int = 0) -> Encoder:
    """Rebuild base encoder + adapters from a boosted checkpoint (strict)."""
    from bench.encoders import load_encoder
    from bench.spatialboost.dual_attention import adapter_state_dict

    path = Path(path)
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a SpatialBoost boosted-encoder checkpoint "
                              f"(format {meta.get('format')!r})")
    missing = [k for k in ("base_encoder", "base_weights_id", "mode") if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: checkpoint metadata lacks {missing} (damaged or written by another tool)")
    base_name = meta["base_encoder"]
    random_init = meta.get("base_random_init") == "true"
    base_seed = int(meta.get("base_seed", seed)) if random_init else seed
    base = load_encoder(base_name, seed=base_seed)
    if base.weights_id != meta["base_weights_id"] and meta.get("base_weights_path"):
        alt = Path(meta["base_weights_path"])
        if alt.is_file():
            base = load_encoder(base_name, weights=alt, seed=base_seed)
    if base.weights_id != meta["base_weights_id"]:
        raise CheckpointError(
            f"{path} was trained on {base_name} with weights {meta['base_weights_id']}, but {base_name} loads "
            f"weights {base.weights_id} here; load the same base weights (base_weights_path="
            f"{meta.get('base_weights_path')}) or retrain.")
    mode = meta["mode"]
    apply_mode(base, mode, lora_rank=int(meta.get("lora_rank") or 8), lora_alpha=float(meta.get("lora_alpha") or 16))
    tensors = read_tensors(path, "encoder.")
    expected = set(adapter_state_dict(base, mode))
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise CheckpointError(f"{path}: tensors do not match a {mode} {base_name}: missing {missing[:4]}, "
                              f"unexpected {extra[:4]}")
    result = base.load_state_dict(tensors, strict=False)
    if result.unexpected_keys:
        raise CheckpointError(f"{path}: unexpected tensors {result.unexpected_keys[:4]}")
    base.weights_id = "sb-" + file_sha256(path)[:16]
    base.sb_metadata = meta  # for the record (bench sb info, tracking)
    base.sb_checkpoint = str(path)  # the VLM evaluation reads the stage-3 projector from the same file
    for p in base.parameters():
        p.requires_grad_(False)
    base.eval()
    return base


# ------------------------------------------------------------------------------ stage resume points
def save_stage(path: str | Path, *, stage: int, projector: nn.Module, llm: nn.Module | None, meta: dict) -> str:
    tensors = _tensors(projector.state_dict(), "projector.")
    if llm is not None:
        sd = llm.state_dict()
        # tied weights (lm_head == embed_tokens) are stored once; `load_state_dict(strict=False)` re-ties
        seen: dict[int, str] = {}
        for k, v in sd.items():
            if v.data_ptr() in seen:
                continue
            seen[v.data_ptr()] = k
            tensors["llm." + k] = v.detach().to("cpu").contiguous().clone()
    return _save(Path(path), tensors, {"format": STAGE_FORMAT, "stage": str(stage), **meta})


def load_stage(path: str | Path, projector: nn.Module, llm: nn.Module | None) -> dict[str, str]:
    path = Path(path)
    meta = read_metadata(path)
    if meta.get("format") != STAGE_FORMAT:
        raise CheckpointError(f"{path} is not a SpatialBoost stage checkpoint")
    projector.load_state_dict(read_tensors(path, "projector."), strict=True)
    if llm is not None:
        sd = read_tensors(path, "llm.")
        if not sd:
            raise CheckpointError(f"{path} holds no LLM weights (a stage-1 checkpoint?)")
        result = llm.load_state_dict(sd, strict=False)
        tied = {k for k in result.missing_keys if k.endswith("lm_head.weight")}
        if set(result.missing_keys) - tied or result.unexpected_keys:
            raise CheckpointError(f"{path}: LLM weights do not fit: missing {result.missing_keys[:4]}, "
                                  f"unexpected {result.unexpected_keys[:4]}")
    return meta


__all__ = ["BOOSTED_FILE", "CheckpointError", "FORMAT", "apply_mode", "file_sha256", "load_boosted_encoder",
           "load_stage", "read_metadata", "read_tensors", "save_boosted", "save_stage"]
