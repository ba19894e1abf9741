"""Fixed 2-D sine-cosine position code (MAE's decoder embedding): the MAE / CroCo decoders and the
VLM's position-keeping projector use the same one."""
from __future__ import annotations

import torch


def sincos_2d(dim: int, h: int, w: int) -> torch.Tensor:
    """(h*w, dim): a quarter of the channels each sin / cos of the row, then of the column, at MAE's
    frequencies 1 / 10000^(k / (dim // 4)); zero-padded to `dim` when it is not a multiple of 4."""
    q = dim // 4
    gy, gx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float32) / max(q, 1))
    out = torch.cat([f(g.reshape(-1, 1) * omega) for g in (gy, gx) for f in (torch.sin, torch.cos)], dim=1)
    return torch.nn.functional.pad(out, (0, dim - out.shape[1]))


__all__ = ["sincos_2d"]
