"""open_clip ViTs as an `Encoder` (only the image tower is kept).

Per-block tokens come from open_clip's own `VisionTransformer.forward_intermediates` (it records
the output of each of `visual.transformer.resblocks`, like a forward hook would, without a second
pass), each normalised with `ln_post` (`normalize_intermediates=True`). Token 0 is CLS; the rest
are the patch grid (open_clip ViTs have no registers).

CLS convention (`cls_source`):
* "token" (default): the `ln_post`-normed CLS token of each block, width-dimensional like the
  patches. For the last block this is exactly the pooled image feature of `encode_image` *before*
  the final linear projection `visual.proj` (pool_type "tok", no attention pool).
* "projected": the last block's cls is the projected image embedding (`encode_image` without
  L2-normalisation, dimension = the CLIP embedding size, e.g. 1280 for ViT-bigG-14), earlier blocks
  keep the normed CLS token. Mixed dimensions across blocks, hence not the default.

open_clip adds a learned, *non-interpolated* position embedding, so inputs must have the model's
native resolution (`preprocess.resolution`); other sizes raise a clear error.
"""
from __future__ import annotations

from typing import Any, Literal

import torch

from bench.encoders.backends import CLIP_MEAN, CLIP_STD, assemble, check_grid, weights_id_for
from bench.seeding import seeded
from bench.encoders.base import Encoder, EncoderOutput, Preprocess
from bench.encoders.weights import ResolvedWeights, load_state_dict


class OpenCLIPEncoder(Encoder):
    backend = "open_clip"

    def __init__(self, visual: torch.nn.Module, *, name: str, arch: str, preprocess: Preprocess, weights_id: str,
                 random_init: bool, cls_source: Literal["token", "projected"] = "token"):
        super().__init__()
        if cls_source not in ("token", "projected"):
            raise ValueError(f"cls_source must be 'token' or 'projected', got {cls_source!r}")
        if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
            raise ValueError(f"{arch}: only CLS-pooled open_clip ViTs are supported "
                             f"(pool_type={getattr(visual, 'pool_type', None)!r}, attn_pool present: "
                             f"{getattr(visual, 'attn_pool', None) is not None})")
        self.visual = visual
        self.name = name
        self.arch = arch
        self.preprocess = preprocess
        self.weights_id = weights_id
        self.random_init = random_init
        self.cls_source = cls_source
        self.embed_dim = int(visual.transformer.width)
        self.num_blocks = len(visual.transformer.resblocks)
        self.patch_size = int(_pair(visual.patch_size)[0])
        self.image_size = _pair(visual.image_size)

    @classmethod
    def create(cls, arch: str, *, name: str | None = None, weights: ResolvedWeights | None = None, seed: int = 0,
               pretrained_tag: str | None = None, cls_source: Literal["token", "projected"] = "token",
               mean=None, std=None, interpolation: str | None = None, **model_kwargs: Any) -> "OpenCLIPEncoder":
        """Build open_clip `arch` (e.g. "ViT-bigG-14") from `weights` or seeded random init.

        `pretrained_tag` (e.g. "laion2b_s39b_b160k") only selects the preprocessing mean/std of that
        release; weights always come from `weights` (nothing is downloaded).
        """
        import open_clip

        with seeded(seed):
            model = open_clip.create_model(arch, pretrained=None, **model_kwargs)
        if weights is not None:
            _load_clip_weights(model, load_state_dict(weights.path))
        visual = model.visual.eval()
        del model  # the text tower is not needed
        cfg = {}
        if pretrained_tag:
            cfg = open_clip.get_pretrained_cfg(arch, pretrained_tag) or {}
        res = _pair(visual.image_size)
        pp = Preprocess(
            resolution=int(res[0]),
            mean=tuple(float(v) for v in (mean or cfg.get("mean") or CLIP_MEAN)),
            std=tuple(float(v) for v in (std or cfg.get("std") or CLIP_STD)),
            patch_size=int(_pair(visual.patch_size)[0]),
            interpolation=str(interpolation or cfg.get("interpolation") or "bicubic"),
        )
        return cls(visual, name=name or arch, arch=arch, preprocess=pp, weights_id=weights_id_for(weights, seed),
                   random_init=weights is None, cls_source=cls_source)

    def _forward(self, images: torch.Tensor, n_last_blocks: int) -> EncoderOutput:
        grid = check_grid(images, self.patch_size)
        if tuple(images.shape[-2:]) != tuple(self.image_size):
            raise ValueError(f"{self.name}: open_clip ViTs need their native input size {self.image_size}, "
                             f"got {tuple(images.shape[-2:])} (learned position embeddings are not interpolated)")
        x = images.to(dtype=next(self.visual.parameters()).dtype)
        projected = self.cls_source == "projected"
        out = self.visual.forward_intermediates(
            x, indices=n_last_blocks, normalize_intermediates=True, intermediates_only=not projected,
            output_fmt="NLC", output_extra_tokens=True)
        tokens = out["image_intermediates"]
        cls_tokens = [p[:, 0] for p in out["image_intermediates_prefix"]]
        if projected:
            cls_tokens[-1] = out["image_features"]  # = encode_image(x, normalize=False)
        return assemble(tokens, cls_tokens, grid)

    def identity(self) -> dict:
        return {**super().identity(), "arch": self.arch, "cls_source": self.cls_source}


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _load_clip_weights(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> None:
    """open_clip's own checkpoint fix-ups (as in `open_clip.load_checkpoint`), on a state dict
    that was read weights-only, then a strict load."""
    from open_clip.factory import convert_state_dict
    from open_clip.model import convert_to_custom_text_state_dict, resize_pos_embed

    sd = convert_state_dict(model, sd)
    if "positional_embedding" in sd and not hasattr(model, "positional_embedding"):
        sd = convert_to_custom_text_state_dict(sd)
    for key in ("logit_scale", "logit_bias"):
        ref = getattr(model, key, None)
        if key in sd and ref is not None and ref.ndim != sd[key].ndim:
            sd[key] = sd[key].reshape(ref.shape)
    if "logit_bias" not in sd and getattr(model, "logit_bias", None) is not None and "logit_scale" in sd:
        sd["logit_bias"] = torch.zeros_like(sd["logit_scale"])
    sd.pop("text.transformer.embeddings.position_ids", None)
    resize_pos_embed(sd, model)
    model.load_state_dict(sd, strict=True)
