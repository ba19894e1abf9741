"""`NAME+sb`: the SpatialBoost version of encoder NAME, loaded from its trained checkpoint.

The bundled trainer (`bench sb train --encoder NAME`) writes
`BENCH_HOME/checkpoints/<NAME>+sb/boosted.safetensors`; `load_boosted` rebuilds the base encoder,
wraps it with dual-channel attention (or the checkpoint's ablation mode) and loads the trained
tensors. A missing checkpoint is trained on the spot when the training data (the SpatialBoost
recipe) is already built here and the LLM is available (the offline toy LLM for random-init
encoders; the paper's Qwen2-7B, from the HF cache or `--llm PATH`, for pretrained ones); otherwise
a clear error says what is missing. Never a silent fallback to the base encoder.

`BENCH_SB_AUTOTRAIN=0` turns the on-the-spot training off; `BENCH_SB_PRESET` picks the recipe
preset it uses (default: $BENCH_SYNTH_PRESET, else tiny).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.encoders.base import Encoder
from bench.errors import NotTrainedError
from bench.paths import checkpoints_root

AUTOTRAIN_ENV = "BENCH_SB_AUTOTRAIN"
PRESET_ENV = "BENCH_SB_PRESET"


def checkpoint_path(name: str) -> Path:
    return checkpoints_root() / name / "boosted.safetensors"


def _preset() -> str:
    from bench.spatialboost.data import PRESETS

    for value in (os.environ.get(PRESET_ENV), os.environ.get("BENCH_SYNTH_PRESET")):
        if value and value in PRESETS:
            return value
    return "tiny"


def training_plan(name: str):
    """(TrainConfig, None) when `name` can be trained here now, else (None, reason)."""
    from bench.encoders import SB_SUFFIX, check_encoder_name
    from bench.spatialboost.model import MissingLLMError, TINY_LLM, resolve_llm_path
    from bench.spatialboost.train import _llm_spec, load_recipe_for, resolve_config

    base = name[: -len(SB_SUFFIX)]
    check_encoder_name(base)
    cfg = resolve_config(encoder=base, preset=_preset(), progress=True)
    missing = []
    from bench.encoders import encoder_card
    from bench.encoders.weights import MissingWeightsError, resolve_weights

    card = encoder_card(base)
    if not card.random_init:
        try:
            resolve_weights(card, None)
        except MissingWeightsError as exc:
            missing.append(f"base encoder weights: {exc}")
    # The training recipe is built from the synthetic scenes, which can always be generated here (like
    # the synthetic tasks' data), so a missing recipe is built by `train`, not reported as missing.
    spec = _llm_spec(cfg)
    if spec != TINY_LLM:
        try:
            resolve_llm_path(spec)
        except MissingLLMError:
            missing.append(f"LLM weights: {spec} is neither a local folder nor in the Hugging Face cache — "
                           f"download it or train with `bench sb train --encoder {base} --llm /path/to/llm`")
    if missing:
        return None, "\n".join(f"  - {m}" for m in missing)
    return cfg, None


def load_boosted(name: str, weights: str | Path | None = None, seed: int = 0) -> Encoder:
    from bench.spatialboost.checkpoint import load_boosted_encoder

    path = Path(weights) if weights else checkpoint_path(name)
    if weights and not path.is_file():
        raise NotTrainedError(f"{name}: checkpoint file {path} does not exist")
    if not path.is_file():
        base = name[:-3]
        if os.environ.get(AUTOTRAIN_ENV, "1") == "0":
            raise NotTrainedError(
                f"{name} is not trained yet: no SpatialBoost checkpoint at {path} (on-the-spot training is off: "
                f"{AUTOTRAIN_ENV}=0). Train it with `bench sb train --encoder {base} --stage all`, or pass "
                f"--weights FILE for a checkpoint trained elsewhere.")
        cfg, reason = training_plan(name)
        if cfg is None:
            raise NotTrainedError(
                f"{name} is not trained yet: no SpatialBoost checkpoint at {path}, and it cannot be trained here "
                f"now. Missing:\n{reason}\n`bench sb train --encoder {base} --stage all` trains it (it builds the "
                f"synthetic recipe itself), or pass --weights FILE for a checkpoint trained elsewhere.")
        from bench.spatialboost.train import _llm_spec, train

        print(f"[sb] {name}: no checkpoint at {path}; training it now (recipe {cfg.preset}, LLM {_llm_spec(cfg)}, "
              f"3 stages) ...", file=sys.stderr, flush=True)
        trained = train(cfg)
        if trained is None or Path(trained) != path or not path.is_file():
            raise NotTrainedError(f"{name}: training finished but wrote no checkpoint at {path}")
    encoder = load_boosted_encoder(path, seed=seed)
    encoder.name = name
    return encoder
