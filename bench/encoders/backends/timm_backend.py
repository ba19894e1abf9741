"""timm ViTs (VisionTransformer; Eva for DINOv3 with RoPE + 4 registers, and PE) as an `Encoder`.

Features come from `model.forward_intermediates(norm=True)`: the last k blocks' tokens with the
final norm applied, prefix tokens split off. CLS = prefix token 0; the remaining prefix tokens are
registers and are dropped. CLS-free models (global_pool 'map' / 'avg': SigLIP2, AIMv2, PE-Core G)
use the pooled pre-logits embedding (`forward_head(pre_logits=True)`) as the last block's CLS and
the mean of the normed patch tokens for earlier blocks.

Models are built with `dynamic_img_size=True` (position embeddings are interpolated / RoPE is
recomputed for other input sizes); at the pretrained resolution this is exactly the original model.
Pretrained weights are loaded into a model built on the meta device (`assign=True`), so a 7B
checkpoint is neither randomly initialised first nor held twice in memory.
"""
from __future__ import annotations

import sys
from typing import Any

import torch

from bench.encoders.backends import assemble, check_grid, weights_id_for
from bench.seeding import seeded
from bench.encoders.base import Encoder, EncoderOutput, Preprocess
from bench.encoders.weights import ResolvedWeights, load_state_dict


class TimmEncoder(Encoder):
    backend = "timm"

    def __init__(self, model: torch.nn.Module, *, name: str, arch: str, preprocess: Preprocess,
                 weights_id: str, random_init: bool):
        super().__init__()
        self.model = model
        self.name = name
        self.arch = arch
        self.preprocess = preprocess
        self.weights_id = weights_id
        self.random_init = random_init
        self.embed_dim = int(model.embed_dim)
        self.num_blocks = len(model.blocks)
        self.patch_size = int(_patch_size(model))
        self.num_prefix_tokens = int(getattr(model, "num_prefix_tokens", 0))
        self.has_cls = getattr(model, "cls_token", None) is not None

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def create(cls, arch: str, *, name: str | None = None, weights: ResolvedWeights | None = None,
               seed: int = 0, resolution: int | None = None, mean: tuple[float, float, float] | None = None,
               std: tuple[float, float, float] | None = None, interpolation: str | None = None,
               **model_kwargs: Any) -> "TimmEncoder":
        """Build `arch` (a timm model name, with or without `.tag`) from weights or seeded random init.

        `model_kwargs` go to `timm.create_model` (e.g. depth/embed_dim/reg_tokens for tiny tests).
        """
        import timm

        kwargs = dict(pretrained=False, num_classes=0, dynamic_img_size=True)
        kwargs.update(model_kwargs)
        if weights is None:
            with seeded(seed):
                model = timm.create_model(arch, **kwargs)
        else:
            model = _build_with_weights(arch, kwargs, load_state_dict(weights.path))
        model.eval()
        img_size = model_kwargs.get("img_size")
        resolution = resolution or (img_size if isinstance(img_size, int) else None)
        pp = _preprocess_from_cfg(model, resolution, mean, std, interpolation)
        return cls(model, name=name or arch, arch=arch, preprocess=pp,
                   weights_id=weights_id_for(weights, seed), random_init=weights is None)

    # ----------------------------------------------------------------------------------- forward
    def _forward(self, images: torch.Tensor, n_last_blocks: int) -> EncoderOutput:
        m = self.model
        grid = check_grid(images, self.patch_size)
        x = images.to(dtype=_param_dtype(m))
        want_pooled = not self.has_cls
        res = m.forward_intermediates(
            x, indices=n_last_blocks, norm=True, output_fmt="NLC",
            return_prefix_tokens=self.num_prefix_tokens > 0,  # Eva breaks on True without prefix tokens
            intermediates_only=not want_pooled)
        pooled = None
        if want_pooled:
            final, inter = res
            pooled = m.forward_head(final, pre_logits=True)
        else:
            inter = res
        tokens, cls_tokens = [], []
        for item in inter:
            if self.num_prefix_tokens > 0:
                t, prefix = item
                cls_tokens.append(prefix[:, 0] if self.has_cls else None)  # prefix[:, 1:] = registers
            else:
                t = item
                cls_tokens.append(None)
            tokens.append(t)
        return assemble(tokens, cls_tokens, grid, pooled)

    def identity(self) -> dict:
        return {**super().identity(), "arch": self.arch}


# ------------------------------------------------------------------------------------------ helpers
def _patch_size(model: torch.nn.Module) -> int:
    ps = model.patch_embed.patch_size
    ps = tuple(ps) if isinstance(ps, (tuple, list)) else (ps, ps)
    if ps[0] != ps[1]:
        raise ValueError(f"non-square patches {ps} are not supported")
    return ps[0]


def _param_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def _preprocess_from_cfg(model, resolution, mean, std, interpolation) -> Preprocess:
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    size = cfg.get("input_size", (3, 224, 224))
    return Preprocess(
        resolution=int(resolution or size[-1]),
        mean=tuple(float(v) for v in (mean or cfg.get("mean", (0.485, 0.456, 0.406)))),
        std=tuple(float(v) for v in (std or cfg.get("std", (0.229, 0.224, 0.225)))),
        patch_size=_patch_size(model),
        interpolation=str(interpolation or cfg.get("interpolation", "bicubic")),
    )


def _adapt_state_dict(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Make a checkpoint's keys match `model`: as-is, else via timm's own `checkpoint_filter_fn`
    (original DINOv2/DINOv3/... layouts); a classifier head the headless model lacks is dropped."""
    expected = set(model.state_dict().keys())

    def drop_head(d):
        return {k: v for k, v in d.items() if k in expected or not k.startswith("head.")}

    sd = drop_head(sd)
    if set(sd) == expected:
        return sd
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if filter_fn is not None:
        try:
            filtered = drop_head(filter_fn(sd, model))
        except Exception:  # a filter that cannot handle this layout: report the raw mismatch below
            filtered = None
        if filtered is not None and set(filtered) == expected:
            return filtered
    missing, unexpected = sorted(expected - set(sd)), sorted(set(sd) - expected)
    raise RuntimeError(
        f"checkpoint does not match timm model {type(model).__name__}: "
        f"{len(missing)} missing keys (e.g. {missing[:5]}), {len(unexpected)} unexpected (e.g. {unexpected[:5]}). "
        f"Is it the right architecture for this encoder?")


def _build_with_weights(arch: str, kwargs: dict, sd: dict[str, torch.Tensor]) -> torch.nn.Module:
    import timm
    from timm.models._manipulate import reinit_non_persistent_buffers

    with torch.device("meta"):
        model = timm.create_model(arch, **kwargs)
    sd = _adapt_state_dict(sd, model)
    ref = model.state_dict()
    sd = {k: (v.to(ref[k].dtype) if v.is_floating_point() and v.dtype != ref[k].dtype else v) for k, v in sd.items()}
    for k, v in sd.items():
        if v.shape != ref[k].shape:
            raise RuntimeError(f"checkpoint tensor {k} has shape {tuple(v.shape)}, model expects {tuple(ref[k].shape)}")
    model.load_state_dict(sd, strict=True, assign=True)

    # Non-persistent buffers (RoPE frequencies, ...) are not in checkpoints: materialise and recompute.
    orphans = []
    for mod_name, mod in model.named_modules():
        for b_name, buf in list(mod._buffers.items()):
            if buf is not None and buf.is_meta:
                mod._buffers[b_name] = torch.empty(buf.shape, dtype=buf.dtype, device="cpu")
                if not hasattr(mod, "init_non_persistent_buffers"):
                    orphans.append(f"{mod_name}.{b_name}")
    reinit_non_persistent_buffers(model)
    still_meta = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if orphans or still_meta:
        # Some buffer cannot be recomputed in place: fall back to a regular (CPU) build + copy.
        model = timm.create_model(arch, **kwargs)
        model.load_state_dict(sd, strict=True)
    return model
