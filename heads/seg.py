"""Segmentation probe pieces for mmsegmentation: the frozen bench encoder as an mmseg backbone, the
BN + 1x1-conv linear head (paper Table 2; DINOv2 linear protocol), a segmentor that aligns the
patch-grid logits with the pixels exactly, and a bank of such heads that trains several learning
rates in one pass over cached features (the fast variant), with its training loop.

Head (protocol sheet): Dropout2d(0.1) -> BatchNorm -> 1x1 conv on the patch features, bilinear
upsampling of the logits. "linear" = last block's patches; "+ms" = the last 4 blocks concatenated
on channels (and multi-scale + flip at test time, done by mmseg's TTA in tasks/segmentation/).

Importing this module registers `FrozenEncoderBackbone`, `BNLinearHead` and `FrozenEncoderDecoder`
in mmseg's `MODELS` (the compatibility shim itself imports no head).
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from bench.mmseg_compat import import_mmseg, mmseg_scope

import_mmseg()  # the mmcv._ext stand-in, then mmseg's own modules registered

from mmengine.config import ConfigDict  # noqa: E402
from mmengine.model import BaseModule  # noqa: E402
from mmseg.models.decode_heads.decode_head import BaseDecodeHead  # noqa: E402
from mmseg.models.segmentors import EncoderDecoder  # noqa: E402
from mmseg.models.utils import resize  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.utils import add_prefix  # noqa: E402

from bench import timing  # noqa: E402
from bench.encoders.base import Encoder  # noqa: E402
from bench.features import autocast_for  # noqa: E402


@MODELS.register_module(force=True)
class FrozenEncoderBackbone(BaseModule):
    """A frozen bench `Encoder` as an mmseg backbone: (B,3,H,W) normalised images -> the last
    `n_last_blocks` patch grids as (B, D, h, w) maps, oldest first.

    The input is zero-padded bottom/right to a multiple of the patch size (zero = the mean colour
    after normalisation); `FrozenEncoderDecoder` crops the upsampled logits back, so every pixel
    keeps its own patch. The encoder never trains, never leaves eval mode and runs without
    autograd (bf16 autocast on GPU, like the feature extractor).
    """

    def __init__(self, encoder: Encoder, n_last_blocks: int = 1, init_cfg=None):
        super().__init__(init_cfg)
        if not 1 <= n_last_blocks <= encoder.num_blocks:
            raise ValueError(f"n_last_blocks must be in 1..{encoder.num_blocks}, got {n_last_blocks}")
        self.encoder = encoder
        self.n_last_blocks = n_last_blocks
        self.patch_size = int(encoder.preprocess.patch_size)
        self.embed_dim = int(encoder.embed_dim)

    def init_weights(self) -> None:  # the encoder's weights are the thing under test: never re-init
        pass

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        p = self.patch_size
        pad_h, pad_w = (-x.shape[-2]) % p, (-x.shape[-1]) % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        with torch.no_grad(), autocast_for(x.device), timing.phase("forward"):
            out = self.encoder(x, n_last_blocks=self.n_last_blocks)
        timing.count(f"rows|on-the-fly.{os.getpid()}|{x.shape[-2]}x{x.shape[-1]}", x.shape[0])
        return tuple(b.patches.permute(0, 3, 1, 2).float().contiguous() for b in out.blocks)


@MODELS.register_module(force=True)
class BNLinearHead(BaseDecodeHead):
    """Dropout2d -> BatchNorm2d -> 1x1 conv on the (resized, concatenated) input maps.

    Build with `in_channels=[D]*L, in_index=list(range(L)), input_transform='resize_concat',
    channels=D*L`. Outputs logits on the patch grid; upsampling is the segmentor's job.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("input_transform", "resize_concat")
        with warnings.catch_warnings():  # mmseg's own deprecation / default-averaging notices
            warnings.filterwarnings("ignore", message=".*(build_loss|avg_non_ignore).*")
            super().__init__(**kwargs)
        self.bn = nn.BatchNorm2d(self.channels)

    def forward(self, inputs):
        x = self._transform_inputs(inputs)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.conv_seg(self.bn(x))


@MODELS.register_module(force=True)
class FrozenEncoderDecoder(EncoderDecoder):
    """mmseg's EncoderDecoder with exact logit alignment for patch models: the logits are upsampled
    bilinearly to the padded input size and cropped to the input, in training and in inference
    (slide windows included), so mmseg's own resize afterwards is the identity."""

    def _logits(self, inputs: torch.Tensor) -> torch.Tensor:
        h, w = inputs.shape[-2:]
        p = self.backbone.patch_size
        logits = self.decode_head.forward(self.extract_feat(inputs))
        logits = resize(logits, size=(math.ceil(h / p) * p, math.ceil(w / p) * p), mode="bilinear",
                        align_corners=self.align_corners)
        return logits[..., :h, :w]

    def encode_decode(self, inputs, batch_img_metas):
        return self._logits(inputs)

    def slide_inference(self, inputs: torch.Tensor, batch_img_metas: list[dict]) -> torch.Tensor:
        """mmseg's sliding-window inference (same windows, same average of overlapping logits),
        with the windows batched through the encoder (`test_cfg.window_batch`, default 8) and
        accumulated in place instead of padding every window's logits to the full image."""
        h_stride, w_stride = self.test_cfg.stride
        h_crop, w_crop = self.test_cfg.crop_size
        b, _, h_img, w_img = inputs.shape
        h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
        w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
        boxes = []
        for hi in range(h_grids):
            for wi in range(w_grids):
                y2, x2 = min(hi * h_stride + h_crop, h_img), min(wi * w_stride + w_crop, w_img)
                boxes.append((max(y2 - h_crop, 0), max(x2 - w_crop, 0), y2, x2))
        preds = inputs.new_zeros((b, self.out_channels, h_img, w_img))
        count = inputs.new_zeros((b, 1, h_img, w_img))
        chunk = int(self.test_cfg.get("window_batch", 8))
        for s in range(0, len(boxes), chunk):
            group = boxes[s:s + chunk]  # every window has the same size: min(crop, image side)
            logits = self._logits(torch.cat([inputs[:, :, y1:y2, x1:x2] for y1, x1, y2, x2 in group]))
            for i, (y1, x1, y2, x2) in enumerate(group):
                preds[:, :, y1:y2, x1:x2] += logits[i * b:(i + 1) * b]
                count[:, :, y1:y2, x1:x2] += 1
        return preds / count

    def loss(self, inputs, data_samples) -> dict:
        return add_prefix(self.decode_head.loss_by_feat(self._logits(inputs), data_samples), "decode")


def build_segmentor(encoder: Encoder, num_classes: int, *, n_last_blocks: int = 1, dropout: float = 0.1,
                    crop_size: tuple[int, int] = (512, 512), test_mode: str = "slide",
                    stride: tuple[int, int] = (341, 341), window_batch: int = 8) -> FrozenEncoderDecoder:
    """The mmseg model of the probe: SegDataPreProcessor (the encoder's mean/std on 0-255 BGR->RGB
    images, padding to `crop_size` in training with ignore 255) + frozen backbone + BN linear head."""
    pp = encoder.preprocess
    d = int(encoder.embed_dim)
    cfg = dict(
        type="FrozenEncoderDecoder",
        data_preprocessor=dict(type="SegDataPreProcessor", mean=[255.0 * m for m in pp.mean],
                               std=[255.0 * s for s in pp.std], bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
                               size=tuple(crop_size)),
        backbone=dict(type="FrozenEncoderBackbone", encoder=encoder, n_last_blocks=n_last_blocks),
        decode_head=dict(type="BNLinearHead", in_channels=[d] * n_last_blocks,
                         in_index=list(range(n_last_blocks)), input_transform="resize_concat",
                         channels=d * n_last_blocks, dropout_ratio=dropout, num_classes=num_classes,
                         align_corners=False,
                         loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=ConfigDict(mode="slide", crop_size=tuple(crop_size), stride=tuple(stride), window_batch=window_batch)
        if test_mode == "slide"
        else ConfigDict(mode="whole"),
    )
    with mmseg_scope():
        model = MODELS.build(cfg)
    with torch.no_grad():  # mmseg's default init_cfg for conv_seg: N(0, 0.01), bias 0 (without its init log)
        model.decode_head.conv_seg.weight.normal_(0, 0.01)
        model.decode_head.conv_seg.bias.zero_()
    return model


# ------------------------------------------------------------------------------- fast variant
@dataclass(frozen=True)
class BankConfig:
    lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    weight_decay: float = 1e-4
    dropout: float = 0.1


class HeadBank(nn.Module):
    """G BN linear heads (one per learning rate) over the same features, trained in one pass.

    Every head sees the same (dropped-out) batch, so BatchNorm's batch statistics and running
    statistics are the same for all heads: they are computed once (`norm`, affine-free) and each
    head keeps its own BN affine (gamma, beta) and 1x1 conv. Head g is then exactly a
    `BNLinearHead` (`export(g)` gives its `bn.*`/`conv_seg.*` state dict), and the G heads run as
    one fused matmul. Parameters are per-head tensors so each head gets its own optimizer lr.
    """

    def __init__(self, in_channels: int, num_classes: int, n_heads: int, dropout: float = 0.1, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.num_classes = num_classes
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.norm = nn.BatchNorm2d(in_channels, affine=False)
        self.gamma = nn.ParameterList(nn.Parameter(torch.ones(in_channels)) for _ in range(n_heads))
        self.beta = nn.ParameterList(nn.Parameter(torch.zeros(in_channels)) for _ in range(n_heads))
        self.weight = nn.ParameterList(  # mmseg's conv_seg init: N(0, 0.01), bias 0
            nn.Parameter(torch.randn(num_classes, in_channels, generator=g) * 0.01) for _ in range(n_heads))
        self.bias = nn.ParameterList(nn.Parameter(torch.zeros(num_classes)) for _ in range(n_heads))

    def __len__(self) -> int:
        return len(self.weight)

    def head_parameters(self, g: int) -> list[nn.Parameter]:
        return [self.gamma[g], self.beta[g], self.weight[g], self.bias[g]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, h, w) -> logits (B, G, K, h, w)."""
        xn = self.norm(self.dropout(x))
        w = torch.stack(list(self.weight))  # (G, K, C)
        w_eff = w * torch.stack(list(self.gamma))[:, None, :]  # conv(gamma * xn + beta)
        b_eff = torch.einsum("gkc,gc->gk", w, torch.stack(list(self.beta))) + torch.stack(list(self.bias))
        out = torch.einsum("bchw,gkc->bgkhw", xn, w_eff) + b_eff[None, :, :, None, None]
        return out

    def export(self, g: int) -> dict[str, torch.Tensor]:
        """Head g as a `BNLinearHead` state dict."""
        sd = {"bn.weight": self.gamma[g], "bn.bias": self.beta[g], "bn.running_mean": self.norm.running_mean,
              "bn.running_var": self.norm.running_var, "bn.num_batches_tracked": self.norm.num_batches_tracked,
              "conv_seg.weight": self.weight[g][:, :, None, None], "conv_seg.bias": self.bias[g]}
        return {k: v.detach().clone() for k, v in sd.items()}


def param_groups(bank: HeadBank, cfg: BankConfig) -> list[dict]:
    """One AdamW param group per head, each with its own learning rate (decay on all, as DINOv2)."""
    return [{"params": bank.head_parameters(g), "lr": lr, "initial_lr": lr, "weight_decay": cfg.weight_decay}
            for g, lr in enumerate(cfg.lrs)]


def warmup_poly(it: int, warm: int, total: int) -> float:
    """DINOv2/mmseg schedule as a multiplier: linear warmup from 1e-6, then poly(power=1) to 0."""
    if it < warm:
        return 1e-6 + (1 - 1e-6) * it / warm
    return max(0.0, 1 - (it - warm) / max(1, total - warm))


def bank_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum over heads of the pixel-mean cross-entropy (ignore 255) of logits upsampled to the labels."""
    b, g, k, h, w = logits.shape
    up = F.interpolate(logits.reshape(b, g * k, h, w), size=y.shape[-2:], mode="bilinear", align_corners=False)
    target = y[:, None].expand(b, g, *y.shape[-2:]).reshape(b * g, *y.shape[-2:])
    loss = F.cross_entropy(up.reshape(b * g, k, *y.shape[-2:]), target, ignore_index=255, reduction="sum")
    return loss / (y != 255).sum().clamp(min=1)


Grid = Callable[[torch.Tensor], torch.Tensor]  # image indices -> (B, C, h, w) features on the device


@timing.timed("head_training")
def train_head_bank(bank: HeadBank, grid: Grid, labels: torch.Tensor, fit: torch.Tensor, cfg: BankConfig, *,
                    iters: int, batch: int, warm: int, generator: torch.Generator,
                    device: torch.device | str = "cpu", progress: bool = False) -> None:
    """The fast variant's loop: AdamW (a learning rate per head) with linear warmup + poly, `iters`
    steps of `batch` images drawn from `fit` in shuffled epochs (`generator`), every head on the same
    batch; labels (N, H, W) at the loss resolution, 255 = ignore. Dropout draws from the global RNG."""
    from tqdm.auto import tqdm

    opt = torch.optim.AdamW(param_groups(bank, cfg), betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: warmup_poly(it, warm, iters))
    bank.train()
    order, pos = fit[torch.randperm(len(fit), generator=generator)], 0
    for _ in tqdm(range(iters), desc=f"seg heads x{len(bank)}", unit="it", disable=not progress, leave=False):
        if pos + batch > len(order):
            order, pos = fit[torch.randperm(len(fit), generator=generator)], 0
        idx = order[pos:pos + batch]
        pos += batch
        loss = bank_loss(bank(grid(idx)), labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()


@timing.timed("evaluation")
@torch.no_grad()
def bank_logits(bank: HeadBank, grid: Grid, labels: torch.Tensor, idx: torch.Tensor,
                device: torch.device | str = "cpu", chunk: int = 32) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(logits (B, G, K, h, w), labels (B, H, W)) of every head over images `idx`, in eval mode."""
    bank.eval()
    for s in range(0, len(idx), chunk):
        i = idx[s:s + chunk]
        yield bank(grid(i)), labels[i].to(device)


__all__ = ["BNLinearHead", "BankConfig", "FrozenEncoderBackbone", "FrozenEncoderDecoder", "HeadBank", "bank_logits",
           "bank_loss", "build_segmentor", "param_groups", "train_head_bank", "warmup_poly"]
