"""transformers vision models as an `Encoder`.

Supported: `DINOv3ViTModel`, `Dinov2Model`, `Dinov2WithRegistersModel`, `Siglip2VisionModel`,
`SiglipVisionModel` (full SigLIP/SigLIP2 checkpoints: the vision tower is taken).

Features: `output_hidden_states=True`; the last k hidden states each get the model's final
layernorm (DINOv2 `get_intermediate_layers(norm=True)` semantics; for the last block this is exactly
`last_hidden_state`); CLS (token 0) and the `num_register_tokens` register tokens are dropped from
the patch grid. SigLIP/SigLIP2 have no CLS token: the last block's `cls` is `pooler_output` (the
MAP attention-pool head on the final normed tokens), earlier blocks use the mean of their normed
patch tokens.

SigLIP2 in transformers is NaFlex (patchified `pixel_values` + `pixel_attention_mask` +
`spatial_shapes`). We feed it the fixed-size square images of `Preprocess` (all images in a batch
have the same grid): they are patchified exactly as `Siglip2ImageProcessor` does, the mask is all
ones and `spatial_shapes` is the grid, so the learned position embeddings are resized to that grid
as in NaFlex. What is *not* reproduced is NaFlex's aspect-preserving resize to a patch budget:
images are square-resized by the benchmark's preprocessing like for every other encoder.
"""
from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from bench.encoders.backends import HALF, IMAGENET_MEAN, IMAGENET_STD, assemble, check_grid, weights_id_for
from bench.seeding import seeded
from bench.encoders.base import Encoder, EncoderOutput, Preprocess
from bench.encoders.weights import MissingWeightsError, ResolvedWeights, load_state_dict

# model_type -> (model class name, final-norm attribute, default mean/std)
_MODELS: dict[str, tuple[str, str, tuple]] = {
    "dinov3_vit": ("DINOv3ViTModel", "norm", (IMAGENET_MEAN, IMAGENET_STD)),
    "dinov2": ("Dinov2Model", "layernorm", (IMAGENET_MEAN, IMAGENET_STD)),
    "dinov2_with_registers": ("Dinov2WithRegistersModel", "layernorm", (IMAGENET_MEAN, IMAGENET_STD)),
    "siglip2_vision_model": ("Siglip2VisionModel", "post_layernorm", (HALF, HALF)),
    "siglip_vision_model": ("SiglipVisionModel", "post_layernorm", (HALF, HALF)),
}
_HAS_CLS = {"dinov3_vit", "dinov2", "dinov2_with_registers"}
_STANDARD_WEIGHT_NAMES = {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"}


@contextlib.contextmanager
def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def vision_config(config):
    """A full SigLIP/SigLIP2 (text + vision) config -> its vision config; others unchanged."""
    if getattr(config, "model_type", None) in ("siglip", "siglip2") and hasattr(config, "vision_config"):
        return config.vision_config
    return config


def _model_class(config):
    import transformers

    mt = getattr(config, "model_type", None)
    if mt not in _MODELS:
        raise ValueError(f"unsupported transformers model_type {mt!r}; supported: {sorted(_MODELS)}")
    return getattr(transformers, _MODELS[mt][0])


class HFEncoder(Encoder):
    backend = "transformers"

    def __init__(self, model: torch.nn.Module, *, name: str, preprocess: Preprocess, weights_id: str,
                 random_init: bool, source: str | None = None):
        super().__init__()
        cfg = model.config
        self.model = model
        self.name = name
        self.preprocess = preprocess
        self.weights_id = weights_id
        self.random_init = random_init
        self.source = source  # HF repo id or local folder, for the record
        self.model_type = cfg.model_type
        self.embed_dim = int(cfg.hidden_size)
        self.num_blocks = int(cfg.num_hidden_layers)
        self.patch_size = int(cfg.patch_size)
        self.has_cls = self.model_type in _HAS_CLS
        self.num_register_tokens = int(getattr(cfg, "num_register_tokens", 0) or 0)
        self.num_prefix_tokens = (1 + self.num_register_tokens) if self.has_cls else 0
        self.final_norm = getattr(model, _MODELS[self.model_type][1])

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config, *, name: str = "hf-encoder", seed: int = 0, **pp: Any) -> "HFEncoder":
        """Seeded random init from a config object (tests, smoke runs)."""
        config = vision_config(config)
        with seeded(seed), _quiet_transformers():
            model = _model_class(config)(config)
        model.eval()
        return cls(model, name=name, preprocess=_preprocess(config, None, **pp),
                   weights_id=weights_id_for(None, seed), random_init=True)

    @classmethod
    def from_weights(cls, weights: ResolvedWeights, *, name: str, config=None, **pp: Any) -> "HFEncoder":
        """Load pretrained weights (a file from `resolve_weights`) with its config.json.

        The config comes from `config`, else config.json next to the weights file, else the HF cache
        of `weights.repo`. Loading always goes through `from_pretrained(local_files_only=True)` (so
        transformers' checkpoint key conversions and full-SigLIP -> vision-tower extraction apply);
        a file with a non-standard name is staged, by symlink, in a temporary folder under the
        standard name. Missing keys are an error.
        """
        from transformers import AutoConfig

        folder = weights.path.parent
        config_dir = _find_config_dir(folder, weights.repo)
        if config is None:
            if config_dir is None:
                raise MissingWeightsError(
                    f"{name}: no config.json next to {weights.path} nor in the Hugging Face cache"
                    f"{' for ' + weights.repo if weights.repo else ''}. Pass the downloaded model folder "
                    f"(config.json + weights), e.g. --weights /path/to/{weights.repo or 'model'}/model.safetensors.")
            config = AutoConfig.from_pretrained(str(config_dir), local_files_only=True)
        full_config = config
        config = vision_config(config)
        model_cls = _model_class(config)
        with tempfile.TemporaryDirectory(prefix="bench-hf-") as tmp, _quiet_transformers():
            src = _stage(weights.path, Path(tmp))
            if src is None:  # .pt/.pth/.bin under another name: our weights-only loader unwraps containers
                model, info = model_cls.from_pretrained(None, config=config, state_dict=load_state_dict(weights.path),
                                                        local_files_only=True, output_loading_info=True)
            else:
                model, info = model_cls.from_pretrained(str(src), config=config, local_files_only=True,
                                                        output_loading_info=True)
        problems = {k: info.get(k) for k in ("missing_keys", "mismatched_keys") if info.get(k)}
        if problems:
            raise RuntimeError(f"{name}: weights {weights.path} do not fit {model_cls.__name__}: "
                               + "; ".join(f"{k}: {sorted(map(str, v))[:5]}" for k, v in problems.items()))
        model.eval()
        pre_cfg = _read_json(config_dir / "preprocessor_config.json") if config_dir else {}
        return cls(model, name=name, preprocess=_preprocess(full_config, pre_cfg, **pp),
                   weights_id=weights_id_for(weights, 0), random_init=False,
                   source=weights.repo or str(folder))

    @classmethod
    def create(cls, *, name: str, weights: ResolvedWeights | None, seed: int = 0, config=None,
               config_kwargs: dict | None = None, config_class: str | None = None, **pp: Any) -> "HFEncoder":
        """Zoo entry point: pretrained from `weights`, or seeded random init from `config` /
        `config_class(**config_kwargs)` when no weights are given."""
        if weights is not None:
            return cls.from_weights(weights, name=name, config=config, **pp)
        if config is None:
            import transformers

            if config_class is None:
                raise MissingWeightsError(f"{name}: random init needs a config; none is known offline")
            config = getattr(transformers, config_class)(**(config_kwargs or {}))
        return cls.from_config(config, name=name, seed=seed, **pp)

    # ----------------------------------------------------------------------------------- forward
    def _forward(self, images: torch.Tensor, n_last_blocks: int) -> EncoderOutput:
        h, w = check_grid(images, self.patch_size)
        x = images.to(dtype=next(self.model.parameters()).dtype)
        if self.model_type == "siglip2_vision_model":
            out = self.model(**_naflex_inputs(x, self.patch_size), output_hidden_states=True)
        elif self.model_type == "siglip_vision_model":
            native = int(self.model.config.image_size)
            out = self.model(pixel_values=x, output_hidden_states=True,
                             interpolate_pos_encoding=tuple(x.shape[-2:]) != (native, native))
        else:
            out = self.model(pixel_values=x, output_hidden_states=True)
        hidden = out.hidden_states[-n_last_blocks:]  # hidden_states[0] is the embedding output
        tokens, cls_tokens = [], []
        for hs in hidden:
            normed = self.final_norm(hs)
            cls_tokens.append(normed[:, 0] if self.has_cls else None)
            tokens.append(normed[:, self.num_prefix_tokens:])
        pooled = None if self.has_cls else out.pooler_output
        return assemble(tokens, cls_tokens, (h, w), pooled)

    def identity(self) -> dict:
        return {**super().identity(), "model_type": self.model_type}


# ------------------------------------------------------------------------------------------ helpers
def _naflex_inputs(x: torch.Tensor, p: int) -> dict[str, torch.Tensor]:
    """Patchify like `Siglip2ImageProcessor.convert_image_to_patches`: (B, h*w, p*p*C), (h, w, p, p, C)."""
    B, C, H, W = x.shape
    h, w = H // p, W // p
    patches = x.reshape(B, C, h, p, w, p).permute(0, 2, 4, 3, 5, 1).reshape(B, h * w, p * p * C)
    mask = torch.ones(B, h * w, dtype=torch.long, device=x.device)
    shapes = torch.tensor([[h, w]] * B, dtype=torch.long, device=x.device)
    return {"pixel_values": patches, "pixel_attention_mask": mask, "spatial_shapes": shapes}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _find_config_dir(folder: Path, repo: str | None) -> Path | None:
    if (folder / "config.json").is_file():
        return folder
    if repo:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id=repo, filename="config.json")
        if isinstance(hit, str) and Path(hit).is_file():
            return Path(hit).parent
    return None


def _preprocess(config, pre_cfg: dict | None, *, resolution: int | None = None, mean=None, std=None,
                interpolation: str = "bicubic") -> Preprocess:
    vcfg = vision_config(config)
    pre_cfg = pre_cfg or {}
    d_mean, d_std = _MODELS[vcfg.model_type][2]
    if resolution is None:
        if vcfg.model_type == "siglip2_vision_model":  # NaFlex: native grid of the position table
            resolution = int(round(vcfg.num_patches ** 0.5)) * int(vcfg.patch_size)
        else:
            size = getattr(vcfg, "image_size", 224)
            resolution = int(size[0] if isinstance(size, (list, tuple)) else size)
    return Preprocess(
        resolution=int(resolution),
        mean=tuple(float(v) for v in (mean or pre_cfg.get("image_mean") or d_mean)),
        std=tuple(float(v) for v in (std or pre_cfg.get("image_std") or d_std)),
        patch_size=int(vcfg.patch_size),
        interpolation=interpolation,
    )


def _stage(path: Path, tmp: Path) -> Path | None:
    """A folder `from_pretrained` can read with the weights at `path`: their own folder when the
    file has a standard name, else symlinks (standard names) in `tmp`. The config is passed
    explicitly, so the folder needs no config.json."""
    from bench.encoders.weights import INDEX_SUFFIX, _shard_files

    path = Path(path)
    if path.name in _STANDARD_WEIGHT_NAMES:
        return path.parent
    if path.name.endswith(INDEX_SUFFIX):
        (tmp / "model.safetensors.index.json").symlink_to(path.resolve())
        for shard in _shard_files(path):
            (tmp / shard.name).symlink_to(shard.resolve())
    elif path.suffix == ".safetensors":
        (tmp / "model.safetensors").symlink_to(path.resolve())
    else:  # .pt/.pth/.bin: loaded by `load_state_dict` and passed as a state dict
        return None
    return tmp
