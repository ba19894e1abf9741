"""A LLaVA-style VLM: vision encoder f_V -> projector g_P ("mlp2x_gelu") -> causal LLM f_L.

SpatialBoost trains it in three stages (`bench.spatialboost.trainer`); 3D-QA / VLM evaluation tasks can
build one from any zoo encoder and an LLM of `bench.vlm.llm`.

Visual tokens are the encoder's patch tokens from one block (`vision_layer`, -1 = last; the
`Encoder` interface applies the final norm, CLS and register tokens are dropped). They are spliced
into the text embeddings in place of the image placeholder token: one placeholder per image,
several images per sample, images in the order of the placeholders. Spliced positions get label
-100, so the loss is autoregressive SFT on the assistant tokens only (labels from the collator).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.encoders.base import Encoder
from bench.errors import BenchError
from bench.posenc import sincos_2d
from bench.vlm.collate import IGNORE_INDEX


class UnsupervisedSampleError(BenchError):
    """A sample lost every supervised token (LLaVA's silent loss-0 failure mode): never train on it."""


POS2D = "+pos2d"


class PositionKeepingProjector(nn.Sequential):
    """g_P(x) + a fixed 2D sin-cos code of the patch's grid cell: a tiny random-init LLM cannot tell the
    visual tokens' positions apart otherwise (measured: a linear probe of the last-block patch tokens of
    vit-tiny-synth finds no per-patch depth, while the grid cell alone does). Same parameters (state
    dict keys) as the plain projector."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        side = int(round(out.shape[-2] ** 0.5))
        if side * side != out.shape[-2]:
            raise ValueError(f"{POS2D} needs a square patch grid, got {out.shape[-2]} tokens")
        return out + sincos_2d(out.shape[-1], side, side).to(out)


def build_projector(vision_dim: int, llm_dim: int, kind: str = "mlp2x_gelu") -> nn.Module:
    """LLaVA-1.5's projector: Linear(d_v, d_l) -> GELU -> Linear(d_l, d_l); ``KIND+pos2d`` adds the
    patch's 2D sin-cos position code to the output (a recorded deviation, see docs/spatialboost.md)."""
    base, pos = (kind[:-len(POS2D)], True) if kind.endswith(POS2D) else (kind, False)
    if base == "mlp2x_gelu":
        cls = PositionKeepingProjector if pos else nn.Sequential
        return cls(nn.Linear(vision_dim, llm_dim), nn.GELU(), nn.Linear(llm_dim, llm_dim))
    if base == "linear":
        return PositionKeepingProjector(nn.Linear(vision_dim, llm_dim)) if pos else nn.Linear(vision_dim, llm_dim)
    raise ValueError(f"unknown projector {kind!r} (mlp2x_gelu | linear, optionally +pos2d)")


class SpatialVLM(nn.Module):
    """f_L(splice(text, g_P(f_V(images)))) with the SFT loss on assistant tokens."""

    def __init__(self, encoder: Encoder, llm: nn.Module, image_token_id: int, *, vision_layer: int = -1,
                 projector: str = "mlp2x_gelu"):
        super().__init__()
        if vision_layer >= 0 or -vision_layer > encoder.num_blocks:
            raise ValueError(f"vision_layer must be in -1..-{encoder.num_blocks}, got {vision_layer}")
        self.encoder = encoder
        self.llm = llm
        self.image_token_id = int(image_token_id)
        self.vision_layer = vision_layer
        llm_dim = llm.get_input_embeddings().embedding_dim
        self.projector = build_projector(encoder.embed_dim, llm_dim, projector)
        self.projector_kind = projector
        emb = llm.get_input_embeddings().num_embeddings
        if not 0 <= self.image_token_id < emb:
            raise ValueError(f"image token id {image_token_id} is outside the LLM vocabulary ({emb})")

    # --------------------------------------------------------------------------------- vision
    def visual_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, h*w, d_llm)."""
        out = self.encoder(images, n_last_blocks=-self.vision_layer)
        patches = out.blocks[0].patches  # oldest of the last k = the requested block
        feats = patches.flatten(1, 2)
        return self.projector(feats.to(next(self.projector.parameters()).dtype))

    # ------------------------------------------------------------------------------- splicing
    def splice(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None,
               visual: torch.Tensor, images_per_sample: list[int] | None = None):
        """Replace each image placeholder by its T visual tokens.

        `visual` is (N_images, T, D), images in row-major placeholder order (sample 0's first).
        Returns (inputs_embeds, attention_mask, labels, position_ids), as long as the longest row's
        last attended token; shorter rows are padded at the end (embedding 0, mask 0, label -100).
        """
        B, L = input_ids.shape
        is_img = input_ids == self.image_token_id
        counts = is_img.sum(dim=1)
        n_img, T, D = visual.shape
        if int(counts.sum()) != n_img:
            raise ValueError(f"{int(counts.sum())} image placeholders in the batch but {n_img} images "
                             "(was an image token truncated away?)")
        if images_per_sample is not None and counts.tolist() != list(images_per_sample):
            raise ValueError(f"placeholders per sample {counts.tolist()} != images per sample {images_per_sample}")
        width = torch.where(is_img, T, 1)
        end = width.cumsum(dim=1)
        start = end - width
        total = end[:, -1]
        new_len = int(total.max())
        embed = self.llm.get_input_embeddings()
        text_ids = input_ids.masked_fill(is_img, 0)
        text_emb = embed(text_ids)
        out = text_emb.new_zeros(B, new_len, D)
        rows = torch.arange(B, device=input_ids.device)[:, None].expand(B, L)
        txt = ~is_img
        out[rows[txt], start[txt]] = text_emb[txt].to(out.dtype)
        new_mask = attention_mask.new_zeros(B, new_len)
        new_mask[rows[txt], start[txt]] = attention_mask[txt]
        new_labels = None
        if labels is not None:
            new_labels = labels.new_full((B, new_len), IGNORE_INDEX)
            new_labels[rows[txt], start[txt]] = labels[txt]
        if n_img:
            img_rows, img_cols = is_img.nonzero(as_tuple=True)  # row-major == image order
            offs = torch.arange(T, device=input_ids.device)
            r = img_rows[:, None].expand(n_img, T)
            c = start[img_rows, img_cols][:, None] + offs
            out[r, c] = visual.to(out.dtype)
            new_mask[r, c] = attention_mask[img_rows, img_cols][:, None].expand(n_img, T)
        # drop trailing columns that are padding in every row (padding tokens widened nothing)
        keep = int((new_mask != 0).any(dim=0).nonzero().max()) + 1 if bool((new_mask != 0).any()) else new_len
        out, new_mask = out[:, :keep], new_mask[:, :keep]
        new_labels = new_labels[:, :keep] if new_labels is not None else None
        position_ids = (new_mask.long().cumsum(dim=1) - 1).clamp(min=0)
        return out, new_mask, new_labels, position_ids

    # -------------------------------------------------------------------------------- forward
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                images: list[torch.Tensor], check_supervision: bool = True) -> dict[str, torch.Tensor]:
        if check_supervision:
            supervised = (labels != IGNORE_INDEX).sum(dim=1)
            if bool((supervised == 0).any()):
                bad = (supervised == 0).nonzero().flatten().tolist()
                raise UnsupervisedSampleError(
                    f"samples {bad} of the batch have no supervised (assistant) token left after tokenisation/"
                    "truncation: their loss would silently be 0. Fix the data or raise max_length.")
        per_sample = [int(im.shape[0]) for im in images]
        device = input_ids.device
        if sum(per_sample):
            pixels = torch.cat([im for im in images if im.shape[0]], dim=0).to(device)
            visual = self.visual_tokens(pixels)
        else:
            d = self.llm.get_input_embeddings().embedding_dim
            visual = torch.zeros(0, 1, d, device=device)
        embeds, mask, new_labels, pos = self.splice(input_ids, attention_mask, labels, visual, per_sample)
        logits = self.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos).logits
        shift_logits = logits[:, :-1].float()
        shift_labels = new_labels[:, 1:]
        n_tok = (shift_labels != IGNORE_INDEX).sum()
        loss = F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                               ignore_index=IGNORE_INDEX, reduction="sum") / n_tok.clamp(min=1)
        return {"loss": loss, "n_supervised": n_tok, "n_tokens": mask.sum()}


__all__ = ["POS2D", "PositionKeepingProjector", "SpatialVLM", "UnsupervisedSampleError", "build_projector"]
