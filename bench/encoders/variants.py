"""Encoder variants (`NAME+VARIANT[-TAG]`): who loads them, and what has to happen first.

A variant provider is registered by name with a lazy ``"module:attr"`` target (the zoo never imports
the code that makes a variant; `bench.encoders` registers ``sb`` -> ``bench.spatialboost.encoder:PROVIDER``)
and implements `VariantProvider`:

* ``load(name, weights, seed)`` builds the encoder from what exists (a checkpoint, or ``weights``);
  it never trains: nothing there -> `bench.errors.NotTrainedError` saying how to get it;
* ``prerequisite(name, weights, preset=...)`` says what must be done first (a `Prerequisite`), or
  None. It is a planner's call: fast, no model building, no training.

A *self-pretrained* base encoder (``vit-tiny-synth``: pretrained here, by a command of this project)
is planned the same way: its zoo module registers a `SelfPretrainer` in `SELF_PRETRAINED`, whose
``prerequisite`` is the pretraining step and whose ``weights_file`` is where the result is cached
(`bench.errors.NotTrainedError` when it is not there yet).

Light on purpose (no torch): dry-run planners import it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from bench.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from bench.encoders.naming import EncoderName


@dataclass
class Prerequisite:
    """A step to run before `load_encoder(encoder)` can succeed (e.g. training a checkpoint)."""

    encoder: str  # canonical name
    action: str  # e.g. "train SpatialBoost checkpoint (3 stages)"
    detail: str  # recipe preset, LLM, where the checkpoint will be written
    estimate_seconds: float | None
    ready: bool  # False: it cannot be done here; `reason` says what is missing and how to provide it
    reason: str = ""
    run: Callable[[], None] | None = None  # does the work (trains), with progress output; None when not ready

    def describe(self) -> str:
        """One plan line, e.g. ``vit-tiny+sb: train SpatialBoost checkpoint (3 stages), about 2 min``."""
        eta = "" if self.estimate_seconds is None else f", about {format_seconds(self.estimate_seconds)}"
        head = f"{self.encoder}: {self.action}{eta} — {self.detail}"
        return head if self.ready else f"{head}\n  cannot run here:\n{self.reason}"


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class VariantProvider(Protocol):
    def load(self, name: "EncoderName", weights: str | Path | None = None, seed: int = 0) -> Any: ...

    def prerequisite(self, name: "EncoderName", weights: str | Path | None = None, *,
                     preset: str = "tiny", progress: bool = True) -> Prerequisite | None: ...


ENCODER_VARIANTS: Registry[VariantProvider] = Registry("encoder variant")


class SelfPretrainer(Protocol):
    def weights_file(self, name: str) -> Path: ...  # the cached weights; NotTrainedError when absent

    def prerequisite(self, name: str, weights: str | Path | None = None, *,
                     progress: bool = True) -> Prerequisite | None: ...


# base encoders whose weights this project makes (registered by their zoo modules, lazily)
SELF_PRETRAINED: Registry[SelfPretrainer] = Registry("self-pretrained encoder")

__all__ = ["ENCODER_VARIANTS", "Prerequisite", "SELF_PRETRAINED", "SelfPretrainer", "VariantProvider",
           "format_seconds"]
