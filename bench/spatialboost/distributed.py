"""Process-group plumbing: the same trainer runs as one process (CPU or one GPU, no process group)
or under `torchrun` (DDP, or FSDP2 `fully_shard` with `--fsdp`).

FSDP wrapping keeps frozen and trainable parameters in separate groups: every dual-channel layer's
frozen Attn, its trainable Attn+ and its gate are three groups; encoder blocks (frozen MLP / norms),
LLM decoder layers and the projector are groups of their own; the rest (patch/position embeddings,
LLM token embeddings + tied head, final norms) sits in the root group, gathered at the VLM forward.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistEnv:
    """Read torchrun's environment; start a process group when WORLD_SIZE > 1 (nccl on CUDA, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda requested but CUDA is not available")
    dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    here = False
    if world > 1 and not (dist.is_available() and dist.is_initialized()):
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        here = True
    return DistEnv(rank, world, local, dev, here)


def shutdown(env: DistEnv) -> None:
    if env.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed:
        value = value.clone()
        dist.all_reduce(value)
        value /= env.world_size
    return value


def all_reduce_sum(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed:
        value = value.clone()
        dist.all_reduce(value)
    return value


def wrap_ddp(model: nn.Module, env: DistEnv, find_unused: bool = False) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [env.device.index] if env.device.type == "cuda" else None
    return DDP(model, device_ids=ids, find_unused_parameters=find_unused)


def wrap_fsdp(vlm: nn.Module, env: DistEnv, bf16: bool) -> nn.Module:
    """FSDP2 with frozen and trainable modules in separate groups (see module docstring)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from bench.spatialboost.dual_attention import DualChannelAttention, LoRAAttention

    mp = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16
          else MixedPrecisionPolicy())
    kw = {"mp_policy": mp}
    encoder = vlm.encoder
    blocks = _encoder_blocks(encoder)
    for module in list(encoder.modules()):
        if isinstance(module, DualChannelAttention):
            fully_shard(module.base, **kw)   # frozen
            fully_shard(module.plus, **kw)   # trainable
            fully_shard(module, **kw)        # the gate alone
        elif isinstance(module, LoRAAttention):
            fully_shard(module, **kw)
    for block in blocks:
        fully_shard(block, **kw)  # what is left in a block: frozen norms / MLP
    for layer in _llm_layers(vlm.llm):
        fully_shard(layer, **kw)
    fully_shard(vlm.projector, **kw)
    fully_shard(vlm, **kw)
    return vlm


@contextlib.contextmanager
def no_grad_sync(model: nn.Module, active: bool):
    """Skip the gradient all-reduce on accumulation micro-steps (DDP `no_sync`, FSDP2 flag)."""
    if not active:
        yield
        return
    if hasattr(model, "no_sync"):
        with model.no_sync():
            yield
    elif hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


def _encoder_blocks(encoder: nn.Module) -> list[nn.Module]:
    inner = getattr(encoder, "model", encoder)
    for path in ("blocks", "encoder.layer", "encoder.layers", "layer", "transformer.resblocks",
                 "visual.transformer.resblocks"):
        try:
            mod = inner.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(mod, (nn.ModuleList, nn.Sequential)):
            return list(mod)
    return []


def _llm_layers(llm: nn.Module) -> list[nn.Module]:
    for path in ("model.layers", "transformer.h", "model.decoder.layers"):
        try:
            mod = llm.get_submodule(path)
        except AttributeError:
            continue
        return list(mod)
    return []
