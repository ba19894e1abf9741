"""DPT depth head (Ranftl et al. 2021) as configured in DINOv2's depth evaluation, with DINOv3's
256-bin classification output.

Structure (DINOv2 `DPTHead`, readout "project", no normalisation layers):
  reassemble: per layer, [patch, CLS] -> Linear(2D, D) + GELU (readout project) -> 1x1 conv to
              post_channels[i] -> resize x4 (transposed conv), x2 (transposed conv), x1, x0.5 (3x3 s2)
  3x3 convs (no bias) to `channels`
  fusion:     from the coarsest level up, each block = [+ residual conv unit on the skip] -> residual
              conv unit -> bilinear x2 (align_corners) -> 1x1 conv; pre-activation residual units
  project:    3x3 conv + ReLU
  head:       3x3 conv C -> C/2, bilinear x2, 3x3 conv -> 32, ReLU, 1x1 conv -> n_bins, bins -> depth
The output is at 16x the patch grid (the input resolution for patch-16 encoders). The last 1x1 conv
and the bin decoding run fused, in pixel chunks (same numbers, a fraction of the memory).
`head_upsample=False` drops the head's x2 (output at 8x the grid): a cheaper variant used only by
the CPU-sized synthetic twin, recorded in its params.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from heads.depth import BinSpec, bins_to_depth


class _FusedBinsDecode(torch.autograd.Function):
    """1x1 conv to bin logits + "linear" bin decoding, evaluated in pixel chunks: neither the
    full-resolution (B, n_bins, H, W) logits nor their relu are kept for backward (they are recomputed
    chunk by chunk), which is most of the memory and time of a DPT head at 256 bins."""

    @staticmethod
    def forward(ctx, h, weight, bias, centers, chunk: int):
        b, c, hh, ww = h.shape
        x = h.permute(0, 2, 3, 1).reshape(-1, c)
        n_bins, csum = centers.numel(), centers.sum()
        num = torch.empty(x.shape[0], dtype=h.dtype, device=h.device)
        den = torch.empty_like(num)
        for s in range(0, x.shape[0], chunk):
            r = torch.addmm(bias, x[s:s + chunk], weight.T).clamp_min_(0)
            num[s:s + chunk] = r @ centers + 0.1 * csum
            den[s:s + chunk] = r.sum(1) + 0.1 * n_bins
        ctx.save_for_backward(x, weight, bias, centers, num, den)
        ctx.shape, ctx.chunk = (b, c, hh, ww), chunk
        return (num / den).reshape(b, 1, hh, ww)

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias, centers, num, den = ctx.saved_tensors
        b, c, hh, ww = ctx.shape
        g = grad.reshape(-1)
        d_num = g / den
        d_den = -g * num / den ** 2
        dx = torch.empty_like(x)
        dw, db = torch.zeros_like(weight), torch.zeros_like(bias)
        for s in range(0, x.shape[0], ctx.chunk):
            xs = x[s:s + ctx.chunk]
            l = torch.addmm(bias, xs, weight.T)
            dl = torch.addcmul(d_den[s:s + ctx.chunk, None], d_num[s:s + ctx.chunk, None], centers)
            dl.masked_fill_(l <= 0, 0.0)  # relu'
            torch.mm(dl, weight, out=dx[s:s + ctx.chunk])
            dw.addmm_(dl.T, xs)
            db += dl.sum(0)
        return dx.reshape(b, hh, ww, c).permute(0, 3, 1, 2), dw, db, None, None


def fused_bins_decode(h: torch.Tensor, conv: nn.Conv2d, bins: BinSpec, chunk: int | None = None) -> torch.Tensor:
    """= bins_to_depth(conv(h), bins) for a 1x1 conv and "linear" normalisation. Chunks of pixels small
    enough for the CPU cache (2048) or large enough to fill a GPU (65536)."""
    chunk = chunk or (2048 if h.device.type == "cpu" else 65536)
    w = conv.weight.reshape(conv.out_channels, conv.in_channels)
    centers = bins.centers(h.device).to(h.dtype)
    return _FusedBinsDecode.apply(h, w, conv.bias, centers, chunk)


class _ResidualConvUnit(nn.Module):
    """Pre-activation residual unit: x + conv(relu(conv(relu(x)))) (3x3 convs, no bias, no norm)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class _FusionBlock(nn.Module):
    def __init__(self, channels: int, with_skip: bool):
        super().__init__()
        self.res1 = _ResidualConvUnit(channels) if with_skip else None
        self.res2 = _ResidualConvUnit(channels)
        self.project = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            if skip.shape != x.shape:  # odd patch grids: the upsampled path is one cell larger
                skip = F.interpolate(skip, size=x.shape[-2:], mode="bilinear", align_corners=False)
            x = x + self.res1(skip)
        x = self.res2(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.project(x)


class DPTDepthHead(nn.Module):
    def __init__(self, embed_dim: int, bins: BinSpec = BinSpec(), channels: int = 256,
                 post_channels: Sequence[int] | None = None, readout: str = "project", n_layers: int = 4,
                 head_upsample: bool = True):
        super().__init__()
        if n_layers != 4:
            raise ValueError("DPT reassembles exactly 4 layers")
        if readout not in ("project", "ignore", "add"):
            raise ValueError(f"unknown readout {readout!r}")
        d = embed_dim
        post = list(post_channels or [max(8, d // 8), max(8, d // 4), max(8, d // 2), d])
        self.bins, self.readout, self.channels, self.post_channels = bins, readout, channels, post
        self.head_upsample = head_upsample
        self.readout_projects = nn.ModuleList(
            [nn.Sequential(nn.Linear(2 * d, d), nn.GELU()) for _ in range(4)]) if readout == "project" else None
        self.projects = nn.ModuleList([nn.Conv2d(d, c, 1) for c in post])
        self.resize = nn.ModuleList([
            nn.ConvTranspose2d(post[0], post[0], 4, stride=4),
            nn.ConvTranspose2d(post[1], post[1], 2, stride=2),
            nn.Identity(),
            nn.Conv2d(post[3], post[3], 3, stride=2, padding=1),
        ])
        self.convs = nn.ModuleList([nn.Conv2d(c, channels, 3, padding=1, bias=False) for c in post])
        self.fusion = nn.ModuleList([_FusionBlock(channels, with_skip=i > 0) for i in range(4)])
        self.project = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(
            nn.Conv2d(channels, channels // 2, 3, padding=1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True) if head_upsample else nn.Identity(),
            nn.Conv2d(channels // 2, 32, 3, padding=1),
            nn.ReLU(),
        )
        self.to_bins = nn.Conv2d(32, bins.n_bins, 1)

    def reassemble(self, patches: torch.Tensor, cls: torch.Tensor | None) -> list[torch.Tensor]:
        """patches (B, h, w, L>=4, D), cls (B, L, D) -> 4 maps at x4, x2, x1, x0.5 of the patch grid."""
        out = []
        for i in range(4):
            t = patches[:, :, :, patches.shape[3] - 4 + i]  # (B, h, w, D)
            if self.readout != "ignore":
                c = cls[:, cls.shape[1] - 4 + i][:, None, None, :]
                t = self.readout_projects[i](torch.cat([t, c.expand_as(t)], dim=-1)) if self.readout == "project" \
                    else t + c
            out.append(self.resize[i](self.projects[i](t.permute(0, 3, 1, 2))))
        return out

    def features(self, patches: torch.Tensor, cls: torch.Tensor | None = None) -> torch.Tensor:
        """The 32-channel map the bin classifier reads, at 16x (8x without head_upsample) the patch grid."""
        feats = [conv(f) for conv, f in zip(self.convs, self.reassemble(patches, cls))]
        out = self.fusion[0](feats[-1])
        for i in range(1, 4):
            out = self.fusion[i](out, feats[-(i + 1)])
        return self.head(self.project(out))

    def logits(self, patches: torch.Tensor, cls: torch.Tensor | None = None) -> torch.Tensor:
        return self.to_bins(self.features(patches, cls))

    def forward(self, patches: torch.Tensor, cls: torch.Tensor | None = None) -> torch.Tensor:
        feats = self.features(patches, cls)
        if self.bins.norm == "linear":
            return fused_bins_decode(feats, self.to_bins, self.bins)
        return bins_to_depth(self.to_bins(feats), self.bins)
