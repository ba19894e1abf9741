"""The encoder zoo: `load_encoder("dinov2-vitb14")` -> an `Encoder` with the uniform interface.

Adding an encoder is one decorated factory in a file under `bench/encoders/zoo/` (or a plug-in
entry point in the group `spatialboost_bench.encoders`)::

    @register_encoder("my-vit", backend="timm", hf_repo="me/my-vit", family="mine")
    def my_vit(weights, seed):
        return TimmEncoder.create("vit_base_patch16_224", name="my-vit", weights=weights, seed=seed)

The factory receives `weights` (a `ResolvedWeights`, or None for random init) and a `seed`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.encoders.base import BlockOutput, Encoder, EncoderOutput, Preprocess
from bench.registry import Registry, import_submodules

SB_SUFFIX = "+sb"


def _discover() -> None:
    import_submodules("bench.encoders.zoo", "spatialboost_bench.encoders")


ENCODERS: Registry[Callable[..., Encoder]] = Registry("encoder", discover=_discover)


@dataclass(frozen=True)
class EncoderCard:
    """What `bench list encoders` shows, known without building the model."""

    name: str
    backend: str  # timm | transformers | open_clip
    family: str
    hf_repo: str | None  # where pretrained weights come from; None = random init only
    random_init: bool = False
    description: str = ""
    weight_files: tuple[str, ...] = ("model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin")


def register_encoder(name: str, *, backend: str, family: str, hf_repo: str | None = None,
                     random_init: bool = False, description: str = "",
                     weight_files: tuple[str, ...] | None = None):
    card = EncoderCard(name, backend, family, hf_repo, random_init, description,
                       **({"weight_files": weight_files} if weight_files else {}))
    return ENCODERS.register(name, card=card)


def encoder_card(name: str) -> EncoderCard:
    return ENCODERS.entry(base_name(name)).meta["card"]


def base_name(name: str) -> str:
    return name[: -len(SB_SUFFIX)] if name.endswith(SB_SUFFIX) else name


def check_encoder_name(name: str) -> None:
    """Raise `UnknownNameError` (with suggestions) for an unknown name, before any work starts."""
    ENCODERS.entry(base_name(name))


def load_encoder(name: str, weights: str | Path | None = None, seed: int = 0) -> Encoder:
    """Build an encoder by name. `NAME+sb` is the SpatialBoost version of NAME."""
    if name.endswith(SB_SUFFIX):
        from bench.encoders.spatialboost import load_boosted

        return load_boosted(name, weights=weights, seed=seed)
    from bench.encoders.weights import resolve_weights

    entry = ENCODERS.entry(name)
    card: EncoderCard = entry.meta["card"]
    resolved = None if card.random_init and weights is None else resolve_weights(card, weights)
    encoder = entry.load()(weights=resolved, seed=seed)
    encoder.name = name
    encoder.eval()
    return encoder


__all__ = ["ENCODERS", "BlockOutput", "Encoder", "EncoderCard", "EncoderOutput", "Preprocess",
           "base_name", "check_encoder_name", "encoder_card", "load_encoder", "register_encoder"]
