"""The SpatialBoost trainer's configuration: typed defaults (the paper, App. A), the ``tiny`` profile,
YAML / keyword / dotlist overrides, and the output name of a run.

Route: `TrainConfig` defaults <- hyperparameter profile (``hparams``; ``tiny`` for the random-init toy
LLM, every override recorded in ``cfg.overrides``) <- YAML (``--config``) <- keyword arguments (the
command-line flags) <- ``--set key=value`` (OmegaConf dotlist).

The output name follows the encoder-name grammar (`bench.encoders.naming`): ``<encoder>+sb`` for the
method, ``<encoder>+sb-<tag>`` for an ablation (`naming.SB_TAGS`: mode, objective, stage-3 order and
levels), so every checkpoint folder is a name `load_encoder` takes. ``encoder`` may itself be such a
name (``--encoder vit-tiny+sb-lora`` = ``--encoder vit-tiny --mode lora``).

Import-light (no torch): the CLI and the planners import it.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.encoders.naming import SB, SB_AXES, EncoderName, normalise_levels, parse_encoder_name, tag_for, tag_overrides
from bench.vlm.llm import PAPER_LLM, TINY_LLM, TinyLLMConfig

STAGES = (1, 2, 3)
MODES = ("dual", "lora", "full")
OBJECTIVES = ("llm", "simple-ft")
VIEWS = ("multi", "single")
ANSWER_MODES = ("chain", "standalone")


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
class TrainConfig:
    encoder: str = "vit-tiny"  # base encoder of the zoo (canonical name after resolve_config)
    encoder_weights: str | None = None  # base weights file (default: the zoo's resolution: HF cache)
    encoder_seed: int = 0  # random-init bases only
    name: str | None = None  # output name; default from the grammar: "<encoder>+sb[-<tag>]" (output_name)
    out_dir: str | None = None  # default BENCH_HOME/checkpoints/<name>
    resume_dir: str | None = None  # where --stage 2|3 find stage1/stage2 (default: out_dir, then <encoder>+sb)
    # LLM: "auto" = qwen2-tiny for random-init encoders (offline toy), the paper's Qwen2-7B otherwise
    llm: str = "auto"
    tiny_llm: TinyLLMConfig = field(default_factory=TinyLLMConfig)
    # data recipe (bench.spatialboost.data)
    preset: str = "tiny"
    recipe_root: str | None = None  # a recipe folder built elsewhere (has manifest.json); overrides preset
    data_seed: int = 0
    order: str = "forward"
    levels: str = "pixel,object,scene,caption"
    views: str = "multi"  # stage-2 data: multi (the paper: + multi-view VQA) | single (Table 7: single-view samples only)
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
    stage2_spatial: bool = False  # stage 2 also trains on the stage-3 spatial CoT samples (tiny profile: a random-init LLM)
    answer_views: int = 0  # held-out views whose spatial questions the VLM answers after each stage (0 = off)
    answer_prior_views: int = 60  # training views the text-only prior is computed from
    answer_mode: str = "chain"  # chain (each view's chain, the model's own earlier answers) | standalone
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
    cut_encoder_grad: bool = False  # TEST-ONLY: detach the encoder's output (a broken stage 3; health check fails)

    def stage(self, k: int) -> StageConfig:
        return getattr(self, f"stage{k}")


# The tiny profile: the random-init toy LLM has to learn a language from a few hundred samples,
# so batches are small, epochs several and the learning rates larger than the paper's.
TINY_PROFILE: dict[str, Any] = {
    "train_resolution": 112,
    "max_length": 1024,
    "eval_samples": 8,
    "stage2_spatial": True, "answer_views": 8,
    "stage1.lr": 2e-3, "stage1.global_batch": 8, "stage1.micro_batch": 8, "stage1.epochs": 2,
    "stage2.lr": 1e-3, "stage2.global_batch": 8, "stage2.micro_batch": 8, "stage2.epochs": 2,
    "stage3.lr": 1e-3, "stage3.global_batch": 8, "stage3.micro_batch": 8, "stage3.epochs": 2,
}


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (the one flattener: profile keys, MLflow params)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _split_encoder(encoder: str) -> tuple[str, dict[str, str]]:
    """(canonical base, trainer settings the name stands for): ``dinov3+sb-lora`` -> (``dinov3-vit7b16``, mode=lora)."""
    from bench.encoders import resolve_name

    name = resolve_name(encoder)
    if name.variant not in (None, SB):
        raise ValueError(f"--encoder {encoder!r}: the SpatialBoost trainer takes a zoo encoder or one of its "
                         f"+{SB} names, not +{name.variant}")
    return name.base, tag_overrides(name)


def resolve_config(dotlist: list[str] | None = None, yaml_path: str | Path | None = None, **kwargs: Any) -> TrainConfig:
    """Typed defaults <- hparam profile <- YAML <- keyword arguments <- dotlist.

    The encoder is canonicalised (aliases -> the zoo's name; `UnknownNameError` for an unknown one); an
    ``encoder`` given as ``BASE+sb-TAG`` sets the tag's settings (an explicit conflicting value is an error).
    """
    from omegaconf import OmegaConf

    schema = OmegaConf.structured(TrainConfig)
    user = OmegaConf.merge(
        OmegaConf.load(str(yaml_path)) if yaml_path else OmegaConf.create({}),
        OmegaConf.create({k: v for k, v in kwargs.items() if v is not None}),
        OmegaConf.from_dotlist(list(dotlist or [])),
    )
    base, implied = _split_encoder(OmegaConf.select(OmegaConf.merge(schema, user), "encoder"))
    user = OmegaConf.merge(OmegaConf.create(implied), user, OmegaConf.create({"encoder": base}))
    probe: TrainConfig = OmegaConf.to_object(OmegaConf.merge(schema, user))
    profile = probe.hparams
    if profile == "auto":
        profile = "tiny" if llm_spec(probe) == TINY_LLM else "paper"
    if profile not in ("paper", "tiny"):
        raise ValueError(f"hparams must be auto | paper | tiny, got {probe.hparams!r}")
    merged = schema
    overrides: list[str] = []
    if profile == "tiny":
        user_keys = set(flatten(OmegaConf.to_container(user)))
        prof = {k: v for k, v in TINY_PROFILE.items() if k not in user_keys}  # explicit user values win
        for key, value in prof.items():
            old = OmegaConf.select(schema, key)
            if old != value:
                overrides.append(f"{key}: {old} -> {value} (tiny profile)")
        merged = OmegaConf.merge(schema, OmegaConf.from_dotlist([f"{k}={v}" for k, v in prof.items()]))
    cfg: TrainConfig = OmegaConf.to_object(OmegaConf.merge(merged, user))
    cfg.hparams = profile
    cfg.overrides = overrides
    cfg.llm = llm_spec(cfg)  # record the LLM actually used, not "auto"
    if cfg.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {cfg.mode!r}")
    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {cfg.objective!r}")
    if cfg.answer_mode not in ANSWER_MODES:
        raise ValueError(f"answer_mode must be one of {ANSWER_MODES}, got {cfg.answer_mode!r}")
    if cfg.views not in VIEWS:
        raise ValueError(f"views must be one of {VIEWS}, got {cfg.views!r}")
    settings = ablation_settings(cfg)
    clash = [f"{k}={settings[k]!r}" for k, v in implied.items() if settings[k] != (normalise_levels(v) if k == "levels"
                                                                                   else v)]
    if clash:
        raise ValueError(f"encoder {kwargs.get('encoder')!r} names {implied}, but the config sets {', '.join(clash)}")
    return cfg


def llm_spec(cfg: TrainConfig) -> str:
    """The LLM a config trains with: ``cfg.llm``, or for "auto" the toy LLM for offline encoders (random
    init, or self-pretrained on the synthetic scenes; without base weights) and the paper's Qwen2-7B otherwise."""
    if cfg.llm != "auto":
        return cfg.llm
    from bench.encoders import encoder_card, self_pretrainer
    from bench.registry import UnknownNameError

    try:  # offline encoders: random init, or self-pretrained here on the synthetic scenes (vit-tiny-synth)
        offline = (encoder_card(cfg.encoder).random_init or self_pretrainer(cfg.encoder) is not None) \
            and not cfg.encoder_weights
    except UnknownNameError:  # reported by resolve_config / build_encoder with suggestions
        offline = False
    return TINY_LLM if offline else PAPER_LLM


def ablation_settings(cfg: TrainConfig) -> dict[str, str]:
    """The settings the name grammar covers (`naming.SB_AXES`), normalised."""
    out = {axis: str(getattr(cfg, axis)) for axis in SB_AXES}
    out["levels"] = normalise_levels(out["levels"])
    return out


def recipe_levels(cfg: TrainConfig) -> tuple[str, ...]:
    """The stage-3 levels as the recipe builder takes them."""
    return tuple(x for x in cfg.levels.replace("+", ",").split(",") if x)


def output_name(cfg: TrainConfig) -> str:
    """``cfg.name``, else the canonical encoder name of this run: ``<encoder>+sb[-<tag>]``."""
    if cfg.name:
        return cfg.name
    return str(EncoderName(_canonical_base(cfg.encoder), SB, tag_for(ablation_settings(cfg))))


def method_name(cfg: TrainConfig) -> str:
    """``<encoder>+sb``: the method's folder, whose stage-1/2 resume points ablations may reuse."""
    return str(EncoderName(_canonical_base(cfg.encoder), SB))


def _canonical_base(encoder: str) -> str:
    from bench.encoders import ENCODERS

    return ENCODERS.canonical(parse_encoder_name(encoder).base)


def output_dir(cfg: TrainConfig) -> Path:
    from bench.paths import checkpoints_root

    return Path(cfg.out_dir) if cfg.out_dir else checkpoints_root() / output_name(cfg)


def config_dict(cfg: TrainConfig) -> dict:
    return asdict(cfg)


def parse_stages(stage: str | int) -> tuple[int, ...]:
    if str(stage) == "all":
        return STAGES
    k = int(stage)
    if k not in STAGES:
        raise ValueError(f"--stage must be 1, 2, 3 or all, got {stage}")
    return (k,)


# ------------------------------------------------------------------------------- command line
def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `bench sb train` and `python -m bench.spatialboost.train` (same arguments)."""
    p.add_argument("--encoder", default="vit-tiny",
                   help="base encoder of the zoo (output NAME+sb), or an ablation name such as NAME+sb-lora")
    p.add_argument("--stage", default="all", help="1 | 2 | 3 | all")
    p.add_argument("--preset", default=None, help="data recipe preset (tiny | small | full); default tiny")
    p.add_argument("--order", default=None, help="stage-3 turn order: forward | reverse | random (Table 7)")
    p.add_argument("--levels", default=None, help="stage-3 levels, e.g. pixel,object,scene,caption")
    p.add_argument("--recipe", dest="recipe_root", default=None, help="a recipe folder built elsewhere")
    p.add_argument("--llm", default=None, help="qwen2-tiny | local folder | HF repo id in the cache (default auto)")
    p.add_argument("--mode", default=None, choices=MODES, help="stage-3 encoder training (ablation); default dual")
    p.add_argument("--objective", default=None, choices=OBJECTIVES, help="llm (SpatialBoost) | simple-ft (baseline)")
    p.add_argument("--views", default=None, choices=VIEWS,
                   help="stage-2 data: multi (+ multi-view VQA, the paper) | single (Table 7 ablation)")
    p.add_argument("--hparams", default=None, choices=["auto", "paper", "tiny"])
    p.add_argument("--encoder-weights", default=None, help="base encoder weights file")
    p.add_argument("--name", default=None, help="output name (default: ENCODER+sb[-TAG] from the settings)")
    p.add_argument("--config", default=None, help="YAML file merged over the defaults")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="OmegaConf dotlist override")
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    p.add_argument("--fsdp", action="store_true", default=None, help="FSDP2 instead of DDP under torchrun")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-track", action="store_true", help="no MLflow run")
    p.add_argument("--no-progress", action="store_true")


def config_from_args(args) -> TrainConfig:
    keys = ("encoder", "preset", "order", "levels", "views", "recipe_root", "llm", "mode", "objective", "hparams",
            "encoder_weights", "name", "device", "fsdp", "seed", "threads")
    kw = {k: getattr(args, k, None) for k in keys}
    if getattr(args, "no_track", False):
        kw["track"] = False
    if getattr(args, "no_progress", False):
        kw["progress"] = False
    return resolve_config(list(getattr(args, "set", []) or []), getattr(args, "config", None), **kw)


def train_command(name: EncoderName | str, preset: str = "tiny") -> str:
    """The `bench sb train` command line that writes the checkpoint of `name` (``X+sb[-TAG]``)."""
    name = parse_encoder_name(name) if isinstance(name, str) else name
    extra = "" if preset == "tiny" else f" --preset {preset}"
    return f"bench sb train --encoder {name} --stage all{extra}"


__all__ = ["ANSWER_MODES", "MODES", "OBJECTIVES", "STAGES", "VIEWS", "StageConfig", "TINY_PROFILE", "TrainConfig", "ablation_settings",
           "add_train_arguments", "config_dict", "config_from_args", "flatten", "llm_spec", "method_name",
           "output_dir", "output_name", "parse_stages", "recipe_levels", "resolve_config", "train_command"]
