"""What a self-pretrained encoder is made from (the recipe) and where the result is cached.

Light (no torch): the planner reads it to say whether pretraining is needed and how long it takes.
The recipe's hash is part of the cached file's metadata; a cached file of another recipe or other
training images is not reused (it is retrained).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bench.paths import checkpoints_root

WEIGHTS_FILE = "encoder.safetensors"
STATE_FILE = "pretrain_state.pt"  # resume point (tensors only; read with weights_only=True)
LOG_FILE = "pretrain_log.json"
FORMAT = "spatialboost-bench/self-pretrained-v1"
LABEL = "self-pretrained on synthetic scenes"


@dataclass(frozen=True)
class PretrainRecipe:
    """Self-supervised pretraining at laptop scale: SimCLR+MAE (default), SimCLR, DINO, MAE, or the
    multi-view objectives over cameras of one training scene (`OBJECTIVES`); values differing from the
    papers' recipes are noted."""

    encoder: str = "vit-tiny-synth"
    arch: str = "vit_tiny_patch16_224"  # the same ViT-Ti/16 as vit-tiny
    objective: str = "simclr+mae"  # dino | simclr | mae | simclr+mae | mvsimclr(+mae|+croco) | croco (OBJECTIVES)
    init_seed: int = 0  # the student starts from vit-tiny's random init with this seed
    seed: int = 0  # crops, shuffling
    # data: the synthetic scenes' TRAINING split only (scene views + the object crops cut from them)
    synth_preset: str = "small"
    synth_seed: int = 0
    sources: tuple[str, ...] = ("scenes", "cls")
    cache_side: int = 128  # images are decoded once and kept at this shorter side (RAM, speed)
    # multi-crop (DINO: 2 x 224 global, scale 0.4-1; 10 x 96 local, scale 0.05-0.4)
    global_size: int = 64
    local_size: int = 32
    n_local: int = 0  # DINO's local crops (SimCLR reads only the two global crops)
    global_scale: tuple[float, float] = (0.3, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.3)
    jitter_p: float = 0.8  # colour jitter probability (DINO/SimCLR: 0.8)
    gray_p: float = 0.2  # grayscale probability (DINO/SimCLR: 0.2)
    # head / loss (DINO: out_dim 65536, hidden 2048, bottleneck 256)
    out_dim: int = 1024
    hidden_dim: int = 512
    bottleneck_dim: int = 128
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.02
    warmup_teacher_temp_steps: int = 30
    center_momentum: float = 0.9
    temperature: float = 0.2  # simclr
    mae_size: int = 112  # mae / simclr+mae: the reconstructed view (224 measured: no better, 2x the time)
    mae_scale: tuple[float, float] = (0.4, 1.0)
    mask_ratio: float = 0.75
    mae_norm_pix: bool = True  # MAE's norm_pix_loss (per-patch normalised targets); False: raw pixels
    mae_weight: float = 1.0  # simclr+mae: weight of the reconstruction loss
    dec_dim: int = 128
    dec_depth: int = 2
    # multi-view objectives (bench/pretrain/multiview.py): positives are other cameras of the same training scene
    mv_cross_view_p: float = 1.0  # share of pairs whose positive is another camera (else the anchor itself)
    mv_pairing: str = "frustum"  # frustum: cameras drawn by frustum overlap (poses only) | scene: uniformly
    mv_positive_scale: tuple[float, float] = (0.5, 1.0)  # the positive view's crop (retrieval ranks whole views)
    mv_colour: bool = True  # colour jitter / grayscale on the cross-view pairs too (False: crop + flip only)
    croco_mask_ratio: float = 0.9  # CroCo: 90% of view A hidden
    croco_batch_size: int = 0  # pairs per cross-view completion step (0: batch_size)
    # optimisation (DINO: lr 5e-4 x batch/256, wd 0.04 -> 0.4, EMA 0.996 -> 1, clip 3, 100+ epochs)
    steps: int = 250
    batch_size: int = 64
    lr: float = 3e-4  # 1e-3+ collapsed (SimCLR: negatives' cosine 0.7-0.8; DINO: uniform teacher)
    min_lr: float = 1e-5
    warmup_steps: int = 25
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    ema_momentum: float = 0.99
    clip_grad: float = 3.0
    freeze_last_layer_steps: int = 30
    threads: int = 0  # 0 = torch's default
    save_every: int = 50  # resume point every this many steps
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # vit-tiny's preprocessing
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    notes: tuple[str, ...] = field(default=(
        "SimCLR on two 64 px crops (paper: 224 px) of batch 64 (paper: 4096), 250 steps (paper: 100+ epochs)",
        "plus MAE (mask 75%) on a third 112 px view, loss weight 1 (a SimCLR+MAE hybrid, not a published recipe)",
        "no hue jitter (CPU cost); position embeddings interpolated to the 4x4 grid of a 64 px crop",
        "DINO (1024 prototypes) and MAE are implemented; neither learned within the budget here"), compare=False)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            from bench.registry import did_you_mean

            raise ValueError(f"unknown pretraining objective {self.objective!r}; choose one of {sorted(OBJECTIVES)} "
                             f"(close: {did_you_mean(self.objective, list(OBJECTIVES))})")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def hash(self) -> str:
        """Identity of the recipe (runtime knobs and notes excluded). Settings added later (`LATER_FIELDS`)
        enter only when they differ from their default, so caches made before they existed stay current."""
        d = {k: v for k, v in self.to_dict().items() if k not in ("threads", "save_every", "notes")}
        base = PretrainRecipe.__dataclass_fields__
        for k in LATER_FIELDS:
            if d[k] == _plain(base[k].default):
                del d[k]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def with_overrides(self, **kw) -> "PretrainRecipe":
        fields = self.__dataclass_fields__
        bad = [k for k in kw if k not in fields]
        if bad:
            from bench.registry import did_you_mean

            raise ValueError(f"unknown pretrain setting(s) {bad}; close: "
                             f"{[s for b in bad for s in did_you_mean(b, list(fields))]}")
        typed = {k: _typed(k, getattr(self, k), v) for k, v in kw.items()}
        return replace(self, **typed)


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


# settings added after recipes were cached: hashed only when set (a cached default encoder stays current)
LATER_FIELDS = ("mv_cross_view_p", "mv_pairing", "mv_positive_scale", "mv_colour", "croco_mask_ratio", "croco_batch_size")


def _typed(key: str, default, value):
    """`value` as the type of the field's default (``bool("false")`` would be True: booleans are parsed)."""
    if isinstance(default, tuple):
        return tuple(value)
    if isinstance(default, bool) and isinstance(value, str):
        low = value.strip().lower()
        if low not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"pretrain setting {key}={value!r}: expected true or false")
        return low in ("true", "1", "yes")
    return type(default)(value)


OBJECTIVES = {"dino": "DINO self-distillation", "simclr": "SimCLR contrastive (NT-Xent)",
              "mae": "MAE masked-patch reconstruction",
              "simclr+mae": "SimCLR on the CLS token + MAE masked-patch reconstruction",
              "mvsimclr": "multi-view SimCLR: positives are other cameras of the same training scene",
              "mvsimclr+mae": "multi-view SimCLR + MAE on the positive view",
              "mvsimclr+croco": "multi-view SimCLR + CroCo cross-view completion",
              "croco": "CroCo cross-view completion (masked view A from A's rest + view B of the scene)"}

RECIPES: dict[str, PretrainRecipe] = {"vit-tiny-synth": PretrainRecipe()}

# Wall time of the default recipe measured on the 2-core development machine (data loading included),
# used by the planner until a finished pretraining has recorded its own (pretrain_log.json).
MEASURED_SECONDS = {"vit-tiny-synth": 222.0}


def output_dir(name: str) -> Path:
    return checkpoints_root() / name


def weights_path(name: str) -> Path:
    return output_dir(name) / WEIGHTS_FILE


__all__ = ["FORMAT", "LABEL", "LOG_FILE", "MEASURED_SECONDS", "PretrainRecipe", "RECIPES", "STATE_FILE",
           "WEIGHTS_FILE", "output_dir", "weights_path"]
