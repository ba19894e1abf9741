"""FLARE history fusion (eai-vc `mujoco_vc/model_loading.py::fuse_embeddings_flare`, history 3):
[e(t-2), e(t-1), e(t)] -> concat(e(t-1) - e(t-2), e(t) - e(t-1), e(t)); indices clamp at 0, so the
first two steps repeat e(0) (zero deltas). Proprioception is appended after the fused embedding."""
from __future__ import annotations

import numpy as np


def flare_sequence(emb: np.ndarray, proprio: np.ndarray | None = None) -> np.ndarray:
    """(T, D) embeddings of one trajectory (+ (T, P) proprio) -> (T, 3D [+ P]) policy inputs."""
    emb = np.asarray(emb, dtype=np.float32)
    t = np.arange(len(emb))
    e0, e1, e2 = emb[np.maximum(t - 2, 0)], emb[np.maximum(t - 1, 0)], emb
    parts = [e1 - e0, e2 - e1, e2]
    if proprio is not None and np.asarray(proprio).shape[-1] > 0:
        parts.append(np.asarray(proprio, dtype=np.float32))
    return np.concatenate(parts, axis=1)


class History:
    """The eval-time buffer of N lockstep episodes: after reset it holds copies of the first
    embedding (the same clamping as `flare_sequence`)."""

    def __init__(self) -> None:
        self.buf: np.ndarray | None = None  # (N, 3, D): e(t-2), e(t-1), e(t)

    def push(self, emb: np.ndarray) -> None:
        emb = np.asarray(emb, dtype=np.float32)
        if self.buf is None:
            self.buf = np.repeat(emb[:, None], 3, axis=1)
        else:
            self.buf = np.concatenate([self.buf[:, 1:], emb[:, None]], axis=1)

    def fused(self, proprio: np.ndarray | None = None) -> np.ndarray:
        assert self.buf is not None, "push an embedding first"
        b = self.buf
        parts = [b[:, 1] - b[:, 0], b[:, 2] - b[:, 1], b[:, 2]]
        if proprio is not None and np.asarray(proprio).shape[-1] > 0:
            parts.append(np.asarray(proprio, dtype=np.float32))
        return np.concatenate(parts, axis=1)


__all__ = ["History", "flare_sequence"]
