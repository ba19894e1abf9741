"""The resumable DINO pretraining loop: ``pretrain(recipe)`` -> ``checkpoints/NAME/encoder.safetensors``.

Resume: every `save_every` steps the whole state (student, teacher, heads, optimiser,
centre, step) is written atomically to ``pretrain_state.pt``; a restart with the same recipe and data
continues from there with the same batches and crops (every step draws from its own seed). The
result holds the *teacher* backbone (DINO evaluates the teacher) in timm's key layout, with the
recipe, its hash and the data hash as safetensors metadata.
"""
from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.io import atomic_path, write_json
from bench.pretrain.data import MultiCrop, data_hash, load_images, training_files
from bench.pretrain.contrastive import ProjectionHead, alignment_stats, nt_xent
from bench.pretrain.mae import MAEDecoder, reconstruction_loss
from bench.pretrain.croco import CrossViewDecoder
from bench.pretrain.multiview import scene_index
from bench.pretrain.mvstep import MULTIVIEW, multiview_step
from bench.pretrain.dino import DINOHead, DINOLoss, cosine, ema_update, entropy_stats
from bench.pretrain.recipe import FORMAT, LABEL, LOG_FILE, STATE_FILE, WEIGHTS_FILE, PretrainRecipe, output_dir
from bench.seeding import seeded


class Backbone(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, head: torch.nn.Module, decoder: torch.nn.Module | None = None):
        super().__init__()
        self.model, self.head = model, head
        self.decoder = decoder  # simclr+mae, mvsimclr+mae / +croco: the decoder beside the projection head

    def forward(self, crops: list[torch.Tensor]) -> torch.Tensor:
        """Crops of equal size go through the ViT together (DINO's MultiCropWrapper)."""
        out, i = [], 0
        while i < len(crops):
            j = i
            while j < len(crops) and crops[j].shape[-1] == crops[i].shape[-1]:
                j += 1
            out.append(self.model(torch.cat(crops[i:j])))
            i = j
        return self.head(torch.cat(out))


def read_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return dict(f.metadata() or {})


def is_current(path: Path, recipe: PretrainRecipe, dhash: str | None = None) -> bool:
    """A cached result of this recipe (and these training images, when `dhash` is given)."""
    try:
        meta = read_metadata(path)
    except Exception:  # noqa: BLE001 - missing or unreadable: not current
        return False
    return meta.get("recipe_hash") == recipe.hash() and (dhash is None or meta.get("data_hash") == dhash)


def _build(r: PretrainRecipe):
    """(student, teacher): DINO's EMA teacher, or None for SimCLR (the student is the result)."""
    import timm

    with seeded(r.init_seed):  # the same random init as vit-tiny with this seed
        model = timm.create_model(r.arch, pretrained=False, num_classes=0, dynamic_img_size=True)
    dims = (model.embed_dim, r.dec_dim, r.dec_depth, model.patch_embed.patch_size[0])
    with seeded(r.init_seed + 1):
        head = (DINOHead(model.embed_dim, r.out_dim, r.hidden_dim, r.bottleneck_dim) if r.objective == "dino" else
                MAEDecoder(*dims) if r.objective == "mae" else CrossViewDecoder(*dims) if r.objective == "croco" else
                ProjectionHead(model.embed_dim, r.hidden_dim, r.bottleneck_dim))
        decoder = (MAEDecoder(*dims) if r.objective in ("simclr+mae", "mvsimclr+mae") else
                   CrossViewDecoder(*dims) if r.objective == "mvsimclr+croco" else None)
    student = Backbone(model, head, decoder)
    if r.objective != "dino":
        return student, None
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return student, teacher


def _optimizer(student: torch.nn.Module, r: PretrainRecipe) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in student.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return torch.optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=r.lr)


def pretrain(recipe: PretrainRecipe, *, root: Path | None = None, out: Path | None = None, progress: bool = True,
             track: bool = True) -> Path:
    """Pretrain (or resume, or return the cached result of the same recipe and data)."""
    from bench.data.synth import ensure

    out = out or output_dir(recipe.encoder)
    final = out / WEIGHTS_FILE
    root = Path(root) if root else ensure(recipe.synth_preset, seed=recipe.synth_seed, progress=progress)
    files = training_files(root, recipe.sources)
    dhash = data_hash(root, files)
    if is_current(final, recipe, dhash):
        return final
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    params = {**{f"pretrain.{k}": v for k, v in recipe.to_dict().items()}, "pretrain.recipe_hash": recipe.hash(),
              "pretrain.data_hash": dhash, "pretrain.n_images": len(files), "pretrain.data_root": str(root)}
    if not track:
        return _loop(recipe, root, files, dhash, out, progress, None)
    from bench.tracking import Tracker

    with Tracker().run(f"pretrain {recipe.encoder}", tags={"bench.kind": "pretrain"}, params=params) as run:
        return _loop(recipe, root, files, dhash, out, progress, run)


def _loop(r: PretrainRecipe, root: Path, files: list[Path], dhash: str, out: Path, progress: bool, run) -> Path:
    from tqdm import tqdm

    t0 = time.perf_counter()
    canvas, sizes = load_images(files, r.cache_side, progress)
    student, teacher = _build(r)
    opt = _optimizer(student, r)
    n_crops = 2 + r.n_local
    loss_fn = DINOLoss(r.out_dim, n_crops, r.student_temp, r.center_momentum)
    augment = MultiCrop(r)
    index = scene_index(root, files) if r.objective in MULTIVIEW else None
    state_path = out / STATE_FILE
    start, history = _resume(state_path, r, dhash, student, teacher, opt, loss_fn)
    student.train()  # no dropout / BN in a ViT: train mode only matters for drop path (0 here)
    per_epoch = max(1, len(files) // r.batch_size)
    bar = tqdm(range(start, r.steps), initial=start, total=r.steps, desc=f"[pretrain] {r.encoder} ({r.objective})",
               disable=not progress, file=sys.stderr)
    for step in bar:
        epoch, b = divmod(step, per_epoch)
        order = np.random.default_rng([r.seed, epoch]).permutation(len(files))
        idx = torch.from_numpy(order[b * r.batch_size:(b + 1) * r.batch_size])
        torch.manual_seed(r.seed * 1_000_003 + step)
        crops = ([] if index is not None else [augment.plain(canvas[idx], sizes[idx])] if r.objective == "mae" else
                 augment(canvas[idx], sizes[idx]))
        lr = cosine(step, r.steps, r.lr, r.min_lr, r.warmup_steps)
        wd = cosine(step, r.steps, r.weight_decay, r.weight_decay_end)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.param_groups[0]["weight_decay"] = wd
        t_temp = cosine(step, r.steps, r.teacher_temp, r.teacher_temp, r.warmup_teacher_temp_steps,
                        r.warmup_teacher_temp)  # linear warmup, then constant
        if index is not None:  # multi-view: pairs of cameras of one training scene
            loss, monitor = multiview_step(student, r, augment, canvas, sizes, index, step)
        elif teacher is not None:  # DINO
            with torch.no_grad():
                t_out = teacher(crops[:2])
            s_out = student(crops)
            monitor = entropy_stats(t_out, loss_fn.center, t_temp)
            loss = loss_fn(s_out, t_out, t_temp)
        elif r.objective == "mae":
            loss = reconstruction_loss(student.model, student.head, crops[0], r.mask_ratio, r.mae_norm_pix)
            monitor = {}
        else:  # SimCLR on the two global crops (+ MAE on a third view: the patch tokens dense probes read)
            z1, z2 = student(crops[:2]).chunk(2)
            monitor = alignment_stats(z1, z2)
            loss = nt_xent(z1, z2, r.temperature)
            if student.decoder is not None:
                image = augment.plain(canvas[idx], sizes[idx])
                reconstruction = reconstruction_loss(student.model, student.decoder, image, r.mask_ratio,
                                                     r.mae_norm_pix)
                monitor["mae_loss"] = float(reconstruction.detach())
                loss = loss + r.mae_weight * reconstruction
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pretraining loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(student.parameters(), r.clip_grad))
        if teacher is not None and step < r.freeze_last_layer_steps:
            for p in student.head.last_layer.parameters():
                p.grad = None
        opt.step()
        momentum = cosine(step, r.steps, r.ema_momentum, 1.0)
        if teacher is not None:
            ema_update(teacher, student, momentum)
        row = {"loss": float(loss.detach()), "lr": lr, "weight_decay": wd, "ema_momentum": momentum,
               "teacher_temp": t_temp, "grad_norm": gnorm, **monitor}
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}")
        if run is not None:
            run.log_metrics({f"pretrain_{k}": v for k, v in row.items()}, step=step)
        if (step + 1) % r.save_every == 0 and step + 1 < r.steps:
            _save_state(state_path, r, dhash, step + 1, student, teacher, opt, loss_fn, history)
    seconds = time.perf_counter() - t0
    path = _save_result(out, r, dhash, teacher or student, history, seconds, len(files))
    if run is not None:
        run.log_metrics({"pretrain_seconds": seconds})
        run.log_file(out / LOG_FILE, folder="pretrain")
        plot = _plot(out, history)
        if plot is not None:
            run.log_file(plot, folder="pretrain")
    state_path.unlink(missing_ok=True)
    state_path.with_suffix(".json").unlink(missing_ok=True)
    if progress:
        print(f"[pretrain] {r.encoder}: {len(history)} steps in {seconds:.0f}s, loss {history[0]['loss']:.3f} -> "
              f"{history[-1]['loss']:.3f} -> {path}", file=sys.stderr, flush=True)
    return path


def _save_state(path: Path, r, dhash, step, student, teacher, opt, loss_fn, history) -> None:
    state = {"student": student.state_dict(), "teacher": (teacher or student).state_dict(), "opt": opt.state_dict(),
             "center": loss_fn.center, "step": torch.tensor(step)}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    write_json(path.with_suffix(".json"), {"recipe_hash": r.hash(), "data_hash": dhash, "step": step,
                                           "history": history})


def _resume(path: Path, r, dhash, student, teacher, opt, loss_fn) -> tuple[int, list[dict]]:
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        return 0, []
    meta = json.loads(meta_path.read_text())
    if meta.get("recipe_hash") != r.hash() or meta.get("data_hash") != dhash:
        print(f"[pretrain] {path}: resume point of another recipe or data; starting over", file=sys.stderr)
        return 0, []
    state = torch.load(path, weights_only=True)
    student.load_state_dict(state["student"])
    if teacher is not None:
        teacher.load_state_dict(state["teacher"])
    opt.load_state_dict(state["opt"])
    loss_fn.center.copy_(state["center"])
    step = int(state["step"])
    print(f"[pretrain] resuming {r.encoder} at step {step}/{r.steps}", file=sys.stderr, flush=True)
    return step, list(meta.get("history", []))[:step]


def _save_result(out: Path, r: PretrainRecipe, dhash: str, teacher: Backbone, history, seconds, n_images) -> Path:
    from safetensors.torch import save_file

    from bench.tracking import code_version

    tensors = {k: v.detach().contiguous().clone() for k, v in teacher.model.state_dict().items()}
    meta = {"format": FORMAT, "label": LABEL, "encoder": r.encoder, "arch": r.arch, "objective": r.objective,
            "recipe": json.dumps(r.to_dict(), sort_keys=True), "recipe_hash": r.hash(), "data_hash": dhash,
            "n_images": str(n_images), "steps": str(len(history)), "code_version": code_version()}
    final = out / WEIGHTS_FILE
    with atomic_path(final) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    write_json(out / LOG_FILE, {"recipe": r.to_dict(), "recipe_hash": r.hash(), "data_hash": dhash,
                                "n_images": n_images, "seconds": seconds, "history": history})
    return final


def _plot(out: Path, history: list[dict]) -> Path | None:
    if not history:
        return None
    from bench.viz import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    steps = range(len(history))
    axes[0].plot(steps, [h["loss"] for h in history])
    axes[0].set(title="loss", xlabel="step")
    for key in ("teacher_entropy", "teacher_batch_entropy", "positive_cosine", "negative_cosine"):
        if key in history[0]:
            axes[1].plot(steps, [h[key] for h in history], label=key.replace("_", " "))
    axes[1].set(title="collapse monitors", xlabel="step")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    path = out / "pretrain_curves.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


__all__ = ["is_current", "pretrain", "read_metadata"]
