"""Pictures a BC run leaves in its tracked artifacts: the training curve and a GIF of the first
(up to three, side by side) evaluation episodes of the last evaluation."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def write_curve(path: Path | None, losses: Sequence[float], evals: Sequence[tuple[int, float]], title: str) -> None:
    if path is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if evals:
        ax.plot([e for e, _ in evals], [v for _, v in evals], "o-", color="tab:blue", label="eval score")
    ax.set_xlabel("epoch (0-based)")
    ax.set_ylabel("eval score (success % / return÷10)")
    ax.set_ylim(-2, 102)
    ax2 = ax.twinx()
    ax2.plot(range(len(losses)), losses, color="tab:gray", alpha=0.7, label="train MSE")
    ax2.set_yscale("log")
    ax2.set_ylabel("train MSE")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_gif(path: Path | None, frames: Sequence[np.ndarray], size: int = 128, fps: int = 10) -> None:
    if path is None or not frames:
        return
    from PIL import Image

    h, w = np.asarray(frames[0]).shape[:2]  # several episodes side by side: keep the aspect ratio
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)).resize((max(1, round(size * w / h)), size)) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


__all__ = ["write_curve", "write_gif"]
