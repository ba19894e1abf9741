"""``NAME+sb[-TAG]``: the SpatialBoost version of encoder NAME (or an ablation), as an encoder variant.

Registered in `bench.encoders.ENCODER_VARIANTS` as ``sb`` (lazily: the zoo does not import this
module). The trainer writes ``BENCH_HOME/checkpoints/<NAME>+sb[-TAG]/boosted.safetensors`` (the folder
is the canonical name: `bench.spatialboost.config.output_name`); loading rebuilds the base encoder,
wraps it as the checkpoint records (dual / lora / full) and loads the trained tensors.

* `SpatialBoostVariant.load` never trains: a missing checkpoint is a `NotTrainedError` that says how
  to get it (`bench sb train --encoder NAME+sb[-TAG] --stage all`, or ``--weights FILE``);
* `SpatialBoostVariant.prerequisite` plans the training (fast, nothing is built): a ready step whose
  ``run()`` trains, or a not-ready one saying what is missing here (base weights, LLM weights).

Import-light: torch and the trainer are imported only by ``load`` and ``run``.
"""
from __future__ import annotations

import json
from pathlib import Path

from bench.encoders.naming import EncoderName
from bench.encoders.variants import Prerequisite
from bench.errors import NotTrainedError
from bench.paths import checkpoints_root

BOOSTED_FILE = "boosted.safetensors"

# Wall time measured for the tiny recipe with the toy LLM (qwen2-tiny) on the 2-core development
# machine (vit-tiny, fresh BENCH_HOME, docs/spatialboost.md "The tiny profile": 106 s in all): per
# stage, plus the rest (synthetic scenes, recipe, model build, the before/after stage-3 evaluation).
TINY_MEASURED_SECONDS = {"setup": 44.0, 1: 6.0, 2: 25.0, 3: 31.0}


def checkpoint_path(name: str | EncoderName) -> Path:
    """Where the checkpoint of ``NAME+sb[-TAG]`` lives (`name` canonical)."""
    return checkpoints_root() / str(name) / BOOSTED_FILE


class SpatialBoostVariant:
    """The ``sb`` variant provider (see `bench.encoders.variants.VariantProvider`)."""

    def load(self, name: EncoderName, weights: str | Path | None = None, seed: int = 0):
        from bench.spatialboost.checkpoint import load_boosted_encoder

        path = Path(weights) if weights else checkpoint_path(name)
        if weights and not path.is_file():
            raise NotTrainedError(f"{name}: checkpoint file {path} does not exist")
        if not path.is_file():
            step = self.prerequisite(name)
            how = (f"Train it with `{_command(name)}` (or run `encoder_prerequisite({str(name)!r}).run()`), "
                   f"or pass --weights FILE for a checkpoint trained elsewhere.")
            if step is not None and not step.ready:
                how = (f"It cannot be trained here now. Missing:\n{step.reason}\n`{_command(name)}` trains it "
                       f"once that is provided (it builds the synthetic recipe itself), or pass --weights FILE "
                       f"for a checkpoint trained elsewhere.")
            raise NotTrainedError(f"{name} is not trained yet: no SpatialBoost checkpoint at {path}. {how}")
        return load_boosted_encoder(path, seed=seed)

    def prerequisite(self, name: EncoderName, weights: str | Path | None = None, *,
                     preset: str = "tiny", progress: bool = True) -> Prerequisite | None:
        """None when the checkpoint exists (or `weights` is an existing file), else the training step.

        Ready when everything training needs is here: the base encoder's weights (random-init bases
        need none) and the LLM (the toy ``qwen2-tiny`` for random-init bases; the paper's Qwen2-7B from
        the HF cache otherwise). The synthetic recipe is not a requirement: training builds it.

        Estimate (`estimate_seconds`), in this order: the wall time the last training of the same
        recipe, base encoder and LLM recorded in its ``train_log.json`` (per stage); else, for the tiny
        preset with the toy LLM, the stage times measured on the 2-core development machine
        (`TINY_MEASURED_SECONDS`, vit-tiny); else None (unknown: paper-scale runs).
        """
        if weights is not None:
            path = Path(weights)
            if path.is_file():
                return None
            return Prerequisite(str(name), "load SpatialBoost checkpoint", f"--weights {path}", None, ready=False,
                                reason=f"  - checkpoint file {path} does not exist")
        path = checkpoint_path(name)
        if path.is_file():
            return None
        from bench.spatialboost.config import llm_spec, resolve_config

        cfg = resolve_config(encoder=str(name), preset=preset, progress=progress)
        llm = llm_spec(cfg)
        stages, resume = _stages_to_run(cfg)
        missing = _missing(cfg, llm)
        if cfg.objective == "simple-ft":
            action = "train simple-FT baseline checkpoint (no LLM)"
            detail = f"recipe preset {cfg.preset}, stage-3 images + depth -> {path}"
        else:
            action = (f"train SpatialBoost checkpoint ({len(stages)} stages)" if len(stages) > 1 else
                      f"train SpatialBoost checkpoint (stage 3, resuming from {resume})")
            detail = f"recipe preset {cfg.preset}, LLM {llm}, mode {cfg.mode} -> {path}"
        base = _base_step(cfg)
        estimate = estimate_seconds(cfg, stages)
        if base is not None:  # vit-tiny-synth+sb: pretrain vit-tiny-synth first
            action = f"{base.action}, then {action}"
            estimate = None if estimate is None or base.estimate_seconds is None else estimate + base.estimate_seconds
        run = None if missing else _runner(cfg, stages, path, base)
        return Prerequisite(str(name), action, detail, estimate, ready=not missing,
                            reason="\n".join(f"  - {m}" for m in missing), run=run)


def _command(name: EncoderName) -> str:
    from bench.spatialboost.config import train_command

    return train_command(name)


def _missing(cfg, llm: str) -> list[str]:
    """What training `cfg` needs that is not on this machine (cheap checks: no hashing, no loading)."""
    from bench.encoders import encoder_card
    from bench.encoders.weights import MissingWeightsError, find_weights
    from bench.vlm.llm import TINY_LLM, MissingLLMError, resolve_llm_path

    missing = []
    card = encoder_card(cfg.encoder)
    if cfg.encoder_weights:
        if not Path(cfg.encoder_weights).exists():
            missing.append(f"base encoder weights: {cfg.encoder_weights} does not exist")
    elif not card.random_init and not _self_pretrained(cfg.encoder):  # self-pretrained: a plan step makes it
        try:
            find_weights(card)
        except MissingWeightsError as exc:
            missing.append(f"base encoder weights: {exc}")
    if cfg.objective != "simple-ft" and llm != TINY_LLM:
        try:
            resolve_llm_path(llm)
        except MissingLLMError:
            missing.append(f"LLM weights: {llm} is neither a local folder nor in the Hugging Face cache — "
                           f"download it or train with `bench sb train --encoder {cfg.encoder} --llm /path/to/llm`")
    return missing


def _self_pretrained(encoder: str) -> bool:
    from bench.encoders import self_pretrainer

    return self_pretrainer(encoder) is not None


def _base_step(cfg):
    """The base encoder's own pretraining when it is a self-pretrained one not made yet (else None)."""
    from bench.encoders import encoder_prerequisite

    return None if cfg.encoder_weights else encoder_prerequisite(cfg.encoder, progress=cfg.progress)


def _stages_to_run(cfg) -> tuple[tuple[int, ...], Path | None]:
    """All three stages, or stage 3 alone when only the stage-3 mode differs from the method and the
    method's stage-2 resume point matches this run (same LLM and recipe)."""
    from bench.spatialboost.config import STAGES, method_name, output_name

    if cfg.objective == "simple-ft" or output_name(cfg) == method_name(cfg):
        return STAGES, None
    from bench.encoders.naming import SB_DEFAULTS
    from bench.spatialboost.config import ablation_settings

    settings = ablation_settings(cfg)
    if any(v != SB_DEFAULTS[k] for k, v in settings.items() if k != "mode"):
        return STAGES, None  # only the stage-3 mode may differ: otherwise the method's stage 2 does not fit
    resume = checkpoints_root() / method_name(cfg) / "stage2.safetensors"
    if not resume.is_file():
        return STAGES, None
    try:
        from bench.spatialboost.checkpoint import read_metadata

        meta = read_metadata(resume)
        recipe = _recipe_hash(cfg)
    except Exception:  # noqa: BLE001 - an unreadable resume point: train from stage 1
        return STAGES, None
    if meta.get("llm") != cfg.llm or recipe is None or meta.get("manifest_hash") != recipe:
        return STAGES, None
    return (3,), resume


def _recipe_hash(cfg) -> str | None:
    """The manifest hash of the recipe `cfg` trains on, when it is already built (None otherwise)."""
    from bench.spatialboost.config import recipe_levels
    from bench.spatialboost.data import default_out, load_recipe

    root = cfg.recipe_root or default_out(cfg.preset, cfg.order, recipe_levels(cfg), cfg.data_seed)
    try:
        return load_recipe(root).manifest_hash
    except FileNotFoundError:
        return None


def estimate_seconds(cfg, stages: tuple[int, ...]) -> float | None:
    """Expected wall time of training `cfg` (see `SpatialBoostVariant.prerequisite`)."""
    recorded = _recorded_seconds(cfg, stages)
    if recorded is not None:
        return recorded
    from bench.vlm.llm import TINY_LLM

    if cfg.preset == "tiny" and cfg.llm == TINY_LLM and cfg.hparams == "tiny":
        stage_keys = (3,) if cfg.objective == "simple-ft" else stages  # simple FT: stage 3's data and batch
        return TINY_MEASURED_SECONDS["setup"] + sum(TINY_MEASURED_SECONDS[s] for s in stage_keys)
    return None


def _recorded_seconds(cfg, stages: tuple[int, ...]) -> float | None:
    """Seconds recorded by the newest earlier training of this recipe + base encoder + LLM."""
    keys = ("encoder", "preset", "order", "levels", "data_seed", "llm", "hparams", "train_resolution")
    best: tuple[float, float] | None = None
    for log in checkpoints_root().glob(f"{cfg.encoder}+sb*/train_log.json"):
        try:
            data = json.loads(log.read_text())
        except (OSError, ValueError):
            continue
        conf = data.get("config", {})
        if any(conf.get(k) != getattr(cfg, k) for k in keys):
            continue
        if cfg.objective == "simple-ft":
            seconds = data.get("seconds") if data.get("objective") == "simple-ft" else None
        elif conf.get("objective") == "simple-ft":
            continue
        else:
            per_stage = data.get("stages", {})
            if not all(str(s) in per_stage for s in stages):
                continue
            seconds = sum(float(per_stage[str(s)].get("seconds", 0.0)) for s in stages)
        if seconds is None:
            continue
        mtime = log.stat().st_mtime
        if best is None or mtime > best[0]:
            best = (mtime, float(seconds))
    return None if best is None else best[1]


def _runner(cfg, stages: tuple[int, ...], path: Path, base=None):
    def run() -> None:
        import sys

        from bench.encoders import encoder_prerequisite

        if base is not None and encoder_prerequisite(cfg.encoder) is not None:  # not made by an earlier step
            base.run()

        from bench.spatialboost.train import train

        print(f"[sb] {output_name_of(cfg)}: no checkpoint at {path}; training it now (recipe {cfg.preset}, "
              f"LLM {cfg.llm}, stages {','.join(map(str, stages))}) ...", file=sys.stderr, flush=True)
        written = train(cfg, stages)
        if written is None or Path(written) != path or not path.is_file():
            raise NotTrainedError(f"{output_name_of(cfg)}: training finished but wrote no checkpoint at {path}")

    return run


def output_name_of(cfg) -> str:
    from bench.spatialboost.config import output_name

    return output_name(cfg)


PROVIDER = SpatialBoostVariant()

__all__ = ["BOOSTED_FILE", "PROVIDER", "SpatialBoostVariant", "TINY_MEASURED_SECONDS", "checkpoint_path",
           "estimate_seconds"]
