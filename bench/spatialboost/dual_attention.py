"""Dual-channel attention (SpatialBoost Eq. 1) and the ablation adapters (LoRA, full fine-tuning).

Every attention layer Attn of the vision encoder gets a twin Attn+ (an exact deep copy) and a
per-channel gate a in R^d, zero-initialised; with alpha = sigmoid(a)::

    out = alpha * Attn(x) + (1 - alpha) * Attn+(x)

computed as ``Attn(x) + (1 - alpha) * (Attn+(x) - Attn(x))`` so that, at initialisation (Attn+ ==
Attn, hence a bitwise-zero difference), the wrapped encoder reproduces the base encoder *exactly*
and d out / d a = -alpha(1-alpha) (Attn+(x) - Attn(x)) is exactly zero; the gate only moves once
Attn+ has diverged. Attn stays frozen but is an ordinary part of the graph (never under no_grad):
the gradient reaching earlier blocks flows through both channels.

Supported attention modules (matched by class name, so no backend import is needed): timm
``Attention`` (ViT) / ``EvaAttention`` (EVA, DINOv3, PE) / ``AttentionRope``, transformers
``DINOv3ViTAttention`` / ``Dinov2Attention`` / ``Dinov2WithRegistersAttention`` /
``Siglip2Attention`` / ``SiglipAttention``, and ``nn.MultiheadAttention`` (open_clip resblocks).
Attention *pooling heads* (SigLIP MAP head, timm ``AttentionPoolLatent``) are not encoder layers
and are left alone.
"""
from __future__ import annotations

import copy
import math
from typing import Iterator

import torch
from torch import nn

ATTENTION_CLASSES = frozenset({
    "Attention", "EvaAttention", "AttentionRope",  # timm
    "DINOv3ViTAttention", "Dinov2Attention", "Dinov2WithRegistersAttention",  # transformers
    "Siglip2Attention", "SiglipAttention",
    "MultiheadAttention",  # torch / open_clip
})
# Module paths containing one of these are pooling heads, not encoder layers.
_SKIP_PATH_PARTS = ("head", "attn_pool", "pooler")


def _is_encoder_attention(path: str, module: nn.Module) -> bool:
    if type(module).__name__ not in ATTENTION_CLASSES:
        return False
    return not any(part in seg for seg in path.split(".") for part in _SKIP_PATH_PARTS)


def find_attention_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The encoder's self-attention layers (outermost match; nothing inside a match is listed)."""
    found: list[tuple[str, nn.Module]] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            path = f"{prefix}.{name}" if prefix else name
            if isinstance(child, (DualChannelAttention, LoRAAttention)):
                raise ValueError(f"{path} is already wrapped ({type(child).__name__})")
            if _is_encoder_attention(path, child):
                found.append((path, child))
            else:
                visit(path, child)

    visit("", model)
    return found


def _set_submodule(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, leaf, new)


class _Delegating(nn.Module):
    """Attribute reads the wrapper does not have fall through to the wrapped attention module
    (code that reads e.g. ``attn.num_heads`` or ``attn.batch_first`` keeps working)."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            base = super().__getattr__("base")
            return getattr(base, name)


class DualChannelAttention(_Delegating):
    """alpha * Attn(x) + (1 - alpha) * Attn+(x), alpha = sigmoid(gate_logit), gate_logit (the paper's a)
    zero-initialised. (`gate` would clash with timm's own `Attention.gate` attribute.)"""

    def __init__(self, base: nn.Module, dim: int):
        super().__init__()
        self.base = base
        self.plus = copy.deepcopy(base)
        ref = next(base.parameters())
        self.gate_logit = nn.Parameter(torch.zeros(dim, dtype=ref.dtype, device=ref.device))

    @property
    def alpha(self) -> torch.Tensor:
        return torch.sigmoid(self.gate_logit)

    def _mix(self, o: torch.Tensor, o_plus: torch.Tensor) -> torch.Tensor:
        if o.shape[-1] != self.gate_logit.shape[0]:
            raise RuntimeError(f"attention output has {o.shape[-1]} channels, the gate {self.gate_logit.shape[0]}")
        beta = (1.0 - torch.sigmoid(self.gate_logit)).to(o.dtype)
        return o + beta * (o_plus - o)  # == alpha*o + (1-alpha)*o_plus, exact when o_plus == o

    def forward(self, *args, **kwargs):
        out = self.base(*args, **kwargs)  # frozen, but in the graph: earlier layers need its backward
        out_plus = self.plus(*args, **kwargs)
        if isinstance(out, tuple):  # transformers / nn.MultiheadAttention: (output, weights, ...)
            return (self._mix(out[0], out_plus[0]), *out[1:])
        return self._mix(out, out_plus)


class LoRALinear(nn.Module):
    """y = W x + b + (alpha/r) * B A x, with B zero-initialised (output unchanged at init)."""

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0):
        super().__init__()
        self.base = base
        self.rank, self.scaling = rank, alpha / rank
        ref = base.weight
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, dtype=ref.dtype, device=ref.device))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, dtype=ref.dtype, device=ref.device))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    @property
    def weight(self) -> torch.Tensor:  # code that reads `.weight` (e.g. F.linear with a fused bias) sees the merge
        return self.base.weight + self.scaling * (self.lora_b @ self.lora_a)

    @property
    def bias(self):
        return self.base.bias

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * ((x @ self.lora_a.t().to(x.dtype)) @ self.lora_b.t().to(x.dtype))


class LoRAAttention(_Delegating):
    """An attention layer whose linear maps (qkv / q,k,v / proj) carry LoRA adapters."""

    def __init__(self, base: nn.Module, rank: int, alpha: float):
        super().__init__()
        for path, mod in list(base.named_modules()):
            if isinstance(mod, nn.Linear) and path:
                _set_submodule(base, path, LoRALinear(mod, rank, alpha))
        if isinstance(base, nn.MultiheadAttention):
            raise NotImplementedError("LoRA on nn.MultiheadAttention (packed in_proj) is not supported")
        self.base = base

    def forward(self, *args, **kwargs):
        return self.base(*args, **kwargs)


# ------------------------------------------------------------------------------------------- API
def wrap_dual_channel(model: nn.Module, dim: int, expected_layers: int | None = None) -> list[str]:
    """Wrap every encoder attention layer of `model` in place; returns the wrapped paths."""
    layers = find_attention_layers(model)
    if not layers:
        raise ValueError(f"no supported attention layer found in {type(model).__name__}; "
                         f"supported classes: {sorted(ATTENTION_CLASSES)}")
    if expected_layers is not None and len(layers) != expected_layers:
        raise ValueError(f"found {len(layers)} attention layers, the encoder has {expected_layers} blocks: "
                         f"{[p for p, _ in layers][:4]}...")
    for path, module in layers:
        _set_submodule(model, path, DualChannelAttention(module, dim))
    return [p for p, _ in layers]


def apply_lora(model: nn.Module, rank: int = 8, alpha: float = 16.0, expected_layers: int | None = None) -> list[str]:
    layers = find_attention_layers(model)
    if expected_layers is not None and len(layers) != expected_layers:
        raise ValueError(f"found {len(layers)} attention layers, the encoder has {expected_layers} blocks")
    for path, module in layers:
        _set_submodule(model, path, LoRAAttention(module, rank, alpha))
    return [p for p, _ in layers]


def dual_layers(model: nn.Module) -> list[tuple[str, DualChannelAttention]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, DualChannelAttention)]


def is_adapter_param(name: str, mode: str) -> bool:
    """Whether parameter `name` (of an encoder) is trained in stage 3 for ablation `mode`."""
    if mode == "dual":
        return ".plus." in f".{name}" or name.split(".")[-1] == "gate_logit"
    if mode == "lora":
        return name.endswith("lora_a") or name.endswith("lora_b")
    if mode == "full":
        return True
    raise ValueError(f"unknown encoder training mode {mode!r}")


def adapter_state_dict(model: nn.Module, mode: str) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint needs for `mode` (dual: Attn+ and gates; lora: A, B; full: all)."""
    sd = model.state_dict()
    if mode == "full":
        return dict(sd)
    return {k: v for k, v in sd.items() if is_adapter_param(k, mode)}


def gate_stats(model: nn.Module) -> list[dict[str, float]]:
    """Per dual-channel layer: alpha mean/min/max (alpha = weight of the frozen original channel)."""
    stats = []
    for _, layer in dual_layers(model):
        a = layer.alpha.detach().float()
        stats.append({"mean": a.mean().item(), "min": a.min().item(), "max": a.max().item()})
    return stats


def param_growth(model: nn.Module) -> dict[str, float]:
    """Extra parameters of the dual channel relative to the base encoder (paper: ~25% DINO, ~30% CLIP)."""
    total = sum(p.numel() for p in model.parameters())
    extra = sum(p.numel() for n, p in model.named_parameters() if is_adapter_param(n, "dual"))
    base = total - extra
    return {"base_params": base, "extra_params": extra, "growth_pct": 100.0 * extra / max(base, 1)}


def iter_named_trainable(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    return ((n, p) for n, p in model.named_parameters() if p.requires_grad)


__all__ = ["ATTENTION_CLASSES", "DualChannelAttention", "LoRAAttention", "LoRALinear", "adapter_state_dict",
           "apply_lora", "dual_layers", "find_attention_layers", "gate_stats", "is_adapter_param",
           "iter_named_trainable", "param_growth", "wrap_dual_channel"]
