"""One optimisation step of the multi-view objectives (``mvsimclr``, ``mvsimclr+mae``, ``mvsimclr+croco``,
``croco``): pairs of training views of one scene (`bench.pretrain.multiview`), the scene-contrastive
loss on the CLS token and/or cross-view completion on the patch tokens.
"""
from __future__ import annotations

import numpy as np
import torch

from bench.pretrain.contrastive import alignment_stats
from bench.pretrain.croco import encode_all
from bench.pretrain.mae import encode_visible, grid_of, mae_loss, reconstruction_loss
from bench.pretrain.multiview import SceneIndex, sample_pairs, scene_contrastive

MULTIVIEW = ("mvsimclr", "mvsimclr+mae", "mvsimclr+croco", "croco")


def _crops(augment, canvas, sizes, pairs, which, size, scale, p_blur, p_solarize, cross_colour: bool) -> torch.Tensor:
    """Augmented crops of `which`; with `cross_colour` off the cross-view pairs get crop + flip only (an
    object's colour is what identifies it in another view; colour jitter would teach it away), the
    same-image pairs keep SimCLR's colour augmentation."""
    if cross_colour:
        return augment._view(canvas[which].float(), sizes[which], size, scale, p_blur, p_solarize)
    cross = pairs.positive != pairs.anchor
    out = torch.empty(len(which), 3, size, size)
    for sel, colour in ((cross, False), (~cross, True)):
        if sel.any():
            idx = which[sel]
            out[sel] = augment._view(canvas[idx].float(), sizes[idx], size, scale, p_blur, p_solarize, colour=colour)
    return out


def multiview_step(student, r, augment, canvas: torch.Tensor, sizes: torch.Tensor, index: SceneIndex,
                   step: int) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss, monitors) of one batch; the pairs are drawn from the step's own seed (resume-exact)."""
    rng = np.random.default_rng([r.seed, step, 1])
    model, p = student.model, student.model.patch_embed.patch_size[0]
    loss, monitor = torch.zeros(()), {}
    pairs = None
    if r.objective.startswith("mvsimclr"):
        pairs = sample_pairs(index, r.batch_size, rng, r.mv_cross_view_p, r.mv_pairing)
        a = _crops(augment, canvas, sizes, pairs, pairs.anchor, r.global_size, r.global_scale, 1.0, 0.0, r.mv_colour)
        b = _crops(augment, canvas, sizes, pairs, pairs.positive, r.global_size, r.mv_positive_scale, 0.1, 0.2,
                   r.mv_colour)
        z1, z2 = student([a, b]).chunk(2)
        monitor = alignment_stats(z1, z2)
        loss = scene_contrastive(z1, z2, pairs.group, r.temperature)
    if r.objective == "mvsimclr+mae":  # MAE on the positive view: the patch tokens dense probes read
        image = augment.plain(canvas[pairs.positive], sizes[pairs.positive])
        rec = reconstruction_loss(model, student.decoder, image, r.mask_ratio, r.mae_norm_pix)
        monitor["mae_loss"] = float(rec.detach())
        loss = loss + r.mae_weight * rec
    if r.objective in ("mvsimclr+croco", "croco"):  # reconstruct masked view A from its rest and view B
        cp = sample_pairs(index, r.croco_batch_size or r.batch_size, rng, 1.0, r.mv_pairing)
        target = augment.plain(canvas[cp.positive], sizes[cp.positive])
        ref = augment.plain(canvas[cp.reference], sizes[cp.reference])
        tokens, keep, n = encode_visible(model, target, r.croco_mask_ratio)
        decoder = student.decoder if student.decoder is not None else student.head
        pred = decoder(tokens, keep, n, grid_of(target, p), encode_all(model, ref), grid_of(ref, p))
        rec = mae_loss(pred, target, keep, p, r.mae_norm_pix)
        monitor["croco_loss"] = float(rec.detach())
        loss = loss + (r.mae_weight if pairs is not None else 1.0) * rec
    return loss, monitor


__all__ = ["MULTIVIEW", "multiview_step"]
