"""Example pictures that runs log as artifacts (matplotlib on the Agg backend, imported when drawing)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def depth_examples(path: Path, images: Sequence, examples: Sequence[tuple[int, np.ndarray, np.ndarray]],
                   max_depth: float, title: str) -> None:
    """Input, ground truth, prediction and |error| (valid pixels) for a few test images.
    `images`: anything with `.image(i)` (a depth dataset); `examples`: (i, prediction, ground truth) in metres."""
    if not examples:
        return
    plt = _pyplot()
    fig, axes = plt.subplots(len(examples), 4, figsize=(13, 2.6 * len(examples)), squeeze=False)
    for row, (i, pred, gt) in zip(axes, examples):
        valid = gt > 0
        vmax = float(np.percentile(gt[valid], 99)) if valid.any() else max_depth
        gt_show = np.where(valid, gt, np.nan)
        err = np.where(valid, np.abs(pred - gt), np.nan)
        row[0].imshow(images.image(i))
        row[1].imshow(gt_show, cmap="magma_r", vmin=0, vmax=vmax)
        im = row[2].imshow(pred, cmap="magma_r", vmin=0, vmax=vmax)
        fig.colorbar(im, ax=row[2], fraction=0.046, label="m")
        im = row[3].imshow(err, cmap="inferno", vmin=0, vmax=max(vmax / 4, 1e-3))
        fig.colorbar(im, ax=row[3], fraction=0.046, label="m")
        for ax, t in zip(row, ("input", "ground truth", "prediction", "|error|")):
            ax.set_title(t, fontsize=9)
            ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def segmentation_examples(path: Path, examples: Sequence[tuple[str, np.ndarray, np.ndarray]], meta: dict) -> None:
    """Image | ground truth overlay | prediction overlay for a few val images (ignore = no colour).
    `examples`: (image path, ground truth, prediction) label maps; `meta`: mmseg classes / palette."""
    if not examples:
        return
    import mmcv
    from matplotlib.patches import Patch

    plt = _pyplot()
    palette = np.array(meta["palette"], dtype=np.float32)
    fig, axes = plt.subplots(len(examples), 3, figsize=(10, 2.8 * len(examples)), squeeze=False)

    def overlay(img, seg):
        out = img.astype(np.float32).copy()
        m = seg != 255
        out[m] = 0.45 * out[m] + 0.55 * palette[np.clip(seg[m], 0, len(palette) - 1)]
        return out.clip(0, 255).astype(np.uint8)

    for row, (img_path, gt, pred) in zip(axes, examples):
        img = mmcv.imread(img_path, channel_order="rgb")
        if img.shape[:2] != gt.shape:
            img = mmcv.imresize(img, (gt.shape[1], gt.shape[0]))
        for ax, im, title in zip(row, (img, overlay(img, gt), overlay(img, pred)),
                                 (Path(img_path).name, "ground truth", "prediction")):
            ax.imshow(im)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    shown = sorted({int(c) for _, gt, pred in examples for c in np.unique(np.concatenate([gt.ravel(), pred.ravel()]))
                    if c != 255 and c < len(palette)})
    handles = [Patch(color=palette[c] / 255.0, label=str(meta["classes"][c])) for c in shown]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.03 * (1 + len(handles) // 6) / max(1, len(examples) / 2), 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)


__all__ = ["depth_examples", "segmentation_examples"]
