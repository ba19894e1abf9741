"""The encoder zoo: `load_encoder("dinov2-vitb14")` -> an `Encoder` with the uniform interface.

Adding an encoder is one decorated factory in a file under `bench/encoders/zoo/` (or a plug-in
entry point in the group `spatialboost_bench.encoders`)::

    @register_encoder("my-vit", backend="timm", hf_repo="me/my-vit", family="mine", aliases=("mine",))
    def my_vit(weights, seed):
        return TimmEncoder.create("vit_base_patch16_224", name="my-vit", weights=weights, seed=seed)

The factory receives `weights` (a `ResolvedWeights`, or None for random init) and a `seed`.
Names follow one grammar (`bench.encoders.naming`): ``BASE``, ``BASE+VARIANT``, ``BASE+VARIANT-TAG``.
An alias is a second name of one entry: it resolves to the canonical name everywhere (the loaded
encoder's `name`, hence the feature-cache key and the tracked results). Variants (``+sb``) are made
by providers registered in `ENCODER_VARIANTS` (lazily: the zoo never imports them):

    check_encoder_name("dinov3+sb")      -> "dinov3-vit7b16+sb" (UnknownNameError with suggestions)
    encoder_prerequisite("vit-tiny+sb")  -> Prerequisite(... run=<trains>) | None   (fast; plans only)
    load_encoder("vit-tiny+sb")          -> the encoder, or NotTrainedError (never trains)

Light at import (no torch): `Encoder` and friends are loaded on first access.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from bench.encoders.cards import EncoderCard
from bench.encoders.naming import EncoderName, parse_encoder_name
from bench.encoders.variants import ENCODER_VARIANTS, SELF_PRETRAINED, Prerequisite
from bench.registry import Registry, UnknownNameError, import_submodules

if TYPE_CHECKING:  # pragma: no cover
    from bench.encoders.base import BlockOutput, Encoder, EncoderOutput, Preprocess

_BASE_EXPORTS = ("BlockOutput", "Encoder", "EncoderOutput", "Preprocess")


def __getattr__(name: str):  # PEP 562: `from bench.encoders import Encoder` without importing torch early
    if name in _BASE_EXPORTS:
        from bench.encoders import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _discover() -> None:
    import_submodules("bench.encoders.zoo", "spatialboost_bench.encoders")


ENCODERS: Registry[Callable[..., Any]] = Registry("encoder", discover=_discover)

# NAME+sb: the SpatialBoost version of NAME (and its ablations NAME+sb-TAG), see bench.spatialboost.encoder
ENCODER_VARIANTS.register("sb", "bench.spatialboost.encoder:PROVIDER",
                          description="SpatialBoost version (needs a trained checkpoint: `bench sb train`)")


def register_encoder(name: str, *, backend: str, family: str, hf_repo: str | None = None,
                     random_init: bool = False, description: str = "",
                     weight_files: tuple[str, ...] | None = None, aliases: tuple[str, ...] | dict[str, str] = ()):
    """Decorator registering a factory under `name`; `aliases` are other names for it (a dict maps each
    alias to a note, e.g. ``{"dinov3": "the paper's DINOv3 baseline"}``)."""
    card = EncoderCard(name, backend, family, hf_repo, random_init, description,
                       **({"weight_files": weight_files} if weight_files else {}))
    add = ENCODERS.register(name, card=card)
    notes = dict(aliases) if isinstance(aliases, dict) else {a: "" for a in aliases}

    def deco(factory):
        add(factory)
        for alias, note in notes.items():
            ENCODERS.alias(alias, name, note=note)
        return factory

    return deco


def resolve_name(name: str | EncoderName) -> EncoderName:
    """Parse `name` and canonicalise its base (alias -> entry name); `UnknownNameError` with suggestions."""
    parsed = parse_encoder_name(name) if isinstance(name, str) else name
    try:
        return parsed.with_base(ENCODERS.canonical(parsed.base))
    except UnknownNameError as exc:
        if not parsed.variant:
            raise
        full = [str(parsed.with_base(s)) for s in exc.suggestions]  # suggest whole names: "dinov3-vitb16+sb"
        raise UnknownNameError("encoder", str(parsed), full, exc.known) from None


def check_encoder_name(name: str) -> str:
    """The canonical full name (``"dinov3+sb"`` -> ``"dinov3-vit7b16+sb"``); raises `UnknownNameError`
    (with suggestions) for an unknown base, variant or tag, before any work starts."""
    parsed = resolve_name(name)
    if parsed.variant is not None:
        ENCODER_VARIANTS.entry(parsed.variant)
    return str(parsed)


def encoder_card(name: str) -> EncoderCard:
    """The card of `name`'s base encoder (aliases and variants resolve to it)."""
    return ENCODERS.entry(parse_encoder_name(name).base).meta["card"]


def base_name(name: str) -> str:
    """The base of `name`, canonical when it is in the zoo (``dinov3+sb-lora`` -> ``dinov3-vit7b16``);
    a base the zoo does not know is returned as written (use `check_encoder_name` to validate)."""
    base = parse_encoder_name(name).base
    return ENCODERS.canonical(base) if base in ENCODERS else base


def encoder_prerequisite(name: str, weights: str | Path | None = None, *,
                         preset: str = "tiny", progress: bool = True) -> Prerequisite | None:
    """What must be done before `load_encoder(name, weights)` can succeed, or None (nothing: a base
    encoder, an existing checkpoint, or `weights` given). Fast: plans, never builds or trains.

    A variant's provider answers (``+sb``: `bench.spatialboost.encoder.SpatialBoostVariant.prerequisite`,
    whose docstring says how the estimate is made); `preset` is the SpatialBoost recipe preset to
    train with. A base encoder whose pretrained weights are missing is not a prerequisite (nothing
    here can fetch them): `load_encoder` raises `MissingWeightsError` saying how to provide them.
    """
    parsed = resolve_name(name)
    if parsed.variant is None:
        pre = self_pretrainer(parsed.base)
        return None if pre is None else pre.prerequisite(parsed.base, weights, progress=progress)
    return ENCODER_VARIANTS.get(parsed.variant).prerequisite(parsed, weights, preset=preset, progress=progress)


def self_pretrainer(name: str):
    """The `SelfPretrainer` of a base encoder whose weights this project makes (``vit-tiny-synth``), or None."""
    base = base_name(name)  # discovers the zoo, whose modules register the pretrainers
    return SELF_PRETRAINED.get(base) if base in SELF_PRETRAINED else None


def load_encoder(name: str, weights: str | Path | None = None, seed: int = 0) -> "Encoder":
    """Build an encoder by name (any alias, any variant); `encoder.name` is the canonical name.

    Never trains: a variant without its checkpoint raises `bench.errors.NotTrainedError` saying how to
    get it (`encoder_prerequisite(name).run()`, `bench sb train ...`, or `weights=FILE`).
    """
    parsed = resolve_name(name)
    if parsed.variant is not None:
        encoder = ENCODER_VARIANTS.get(parsed.variant).load(parsed, weights, seed)
    else:
        from bench.encoders.weights import resolve_weights

        entry = ENCODERS.entry(parsed.base)
        card: EncoderCard = entry.meta["card"]
        pre = self_pretrainer(parsed.base) if weights is None else None
        if pre is not None:  # made by this project (`bench pretrain NAME`): NotTrainedError when not yet
            weights = pre.weights_file(parsed.base)
        resolved = None if card.random_init and weights is None else resolve_weights(card, weights)
        encoder = entry.load()(weights=resolved, seed=seed)
    encoder.name = str(parsed)
    encoder.eval()
    return encoder


__all__ = ["ENCODERS", "ENCODER_VARIANTS", "BlockOutput", "Encoder", "EncoderCard", "EncoderName", "EncoderOutput",
           "Preprocess", "Prerequisite", "base_name", "check_encoder_name", "encoder_card", "encoder_prerequisite",
           "load_encoder", "parse_encoder_name", "register_encoder", "resolve_name", "self_pretrainer"]
