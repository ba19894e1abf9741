"""Run-time policies of this machine (how, not what: they change speed, never a protocol's numbers
beyond float noise). Tasks take the knob from their config (`threads`, 0 = this policy)."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

SMALL_MACHINE_CORES = 4


def default_head_threads() -> int:
    """CPU threads for training small heads: 1 on machines with <= 4 cores, where a second OpenMP
    thread competing with other work slows the small matmuls down several-fold; else torch's current."""
    return 1 if (os.cpu_count() or 1) <= SMALL_MACHINE_CORES else torch.get_num_threads()


@contextlib.contextmanager
def head_threads(device: torch.device | str, threads: int = 0) -> Iterator[int | None]:
    """CPU threads while heads train (`threads` > 0 exactly that many, 0 the default policy); yields
    the count in use, or None on a GPU (left alone). The previous setting is restored afterwards."""
    if torch.device(device).type != "cpu":
        yield None
        return
    want = max(1, threads if threads > 0 else default_head_threads())
    old = torch.get_num_threads()
    torch.set_num_threads(want)
    try:
        yield want
    finally:
        torch.set_num_threads(old)


__all__ = ["default_head_threads", "head_threads"]
