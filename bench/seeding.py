"""Seeding: the global generators for a run, and a scope that seeds without disturbing them."""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def seeded(seed: int):
    """Build modules under a fixed CPU RNG (restored afterwards): initial weights depend only on the
    seed and shape, not on how many modules were built before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


__all__ = ["seed_everything", "seeded"]
