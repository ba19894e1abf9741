"""Showing SpatialRGPT-Bench regions to a VLM without a mask input: drawn on the image.

SpatialRGPT feeds region masks to its own model; LLaVA-1.5 has only pixels, so the regions the
question names ("Region [0]", "Region [1]") are drawn in (docs/vlm-eval.md §4.1, a recorded protocol
setting ``region_prompt``):

    boxes  each bbox outlined in its own colour, labelled "Region [i]" at its top-left corner
    masks  each mask (COCO RLE, boxes filled when RLE is missing) tinted, its box outlined and labelled
    none   the image as is (a baseline: the question cannot be grounded)
"""
from __future__ import annotations

import numpy as np

REGION_PROMPTS = ("boxes", "masks", "none")
PALETTE = ((255, 0, 0), (0, 160, 255), (0, 200, 0), (255, 160, 0), (200, 0, 255), (255, 255, 0))


def rle_decode(rle: dict) -> np.ndarray:
    """A COCO RLE (``counts`` as a list, or pycocotools' compressed string) -> (H, W) bool mask."""
    h, w = (int(x) for x in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, (bytes, str)):
        counts = _decompress(counts.encode() if isinstance(counts, str) else counts)
    flat = np.zeros(h * w, dtype=bool)
    pos, val = 0, False
    for c in counts:
        if val:
            flat[pos:pos + int(c)] = True
        pos += int(c)
        val = not val
    return flat.reshape(w, h).T  # column-major, as COCO stores it


def _decompress(s: bytes) -> list[int]:
    """pycocotools' `rleFrString`: 5-bit groups with a continuation bit, deltas from the count 2 back."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = s[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_encode(mask: np.ndarray) -> dict:
    """(H, W) bool -> uncompressed COCO RLE (``counts`` list, column-major, starting with zeros)."""
    flat = np.asarray(mask, bool).T.reshape(-1)
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(edges).tolist()
    if flat.size and flat[0]:
        runs = [0] + runs
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(r) for r in runs]}


def draw_regions(image, bboxes: list, rles: list | None = None, mode: str = "boxes"):
    """A copy of the PIL image with the regions drawn (see the module doc)."""
    from PIL import Image, ImageDraw

    if mode not in REGION_PROMPTS:
        raise ValueError(f"region_prompt must be one of {REGION_PROMPTS}, got {mode!r}")
    out = image.convert("RGB").copy()
    if mode == "none" or not bboxes:
        return out
    width = max(2, round(max(out.size) / 160))
    if mode == "masks":
        arr = np.asarray(out).astype(np.float32)
        for i, box in enumerate(bboxes):
            rle = rles[i] if rles and i < len(rles) and rles[i] else None
            if rle is not None:
                m = rle_decode(rle)
            else:
                m = np.zeros(arr.shape[:2], bool)
                x1, y1, x2, y2 = (int(round(v)) for v in box)
                m[y1:y2 + 1, x1:x2 + 1] = True
            arr[m] = 0.5 * arr[m] + 0.5 * np.asarray(PALETTE[i % len(PALETTE)], np.float32)
        out = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    for i, box in enumerate(bboxes):
        colour = PALETTE[i % len(PALETTE)]
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        label = f"Region [{i}]"
        tx, ty = x1 + width, max(0.0, y1 - 12 - width)
        tb = draw.textbbox((tx, ty), label)
        draw.rectangle(tb, fill=(0, 0, 0))
        draw.text((tx, ty), label, fill=colour)
    return out


__all__ = ["REGION_PROMPTS", "draw_regions", "rle_decode", "rle_encode"]
