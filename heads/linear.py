"""A bank of linear classifiers trained together on frozen features (DINOv2 linear protocol).

DINOv2 (`eval/linear.py`) sweeps 13 learning rates x {last 1, last 4 blocks' CLS} x {with, without
the last block's average-pooled patch tokens} and trains all 52 heads on the same batches, so the
features are read (or the backbone run) once per step instead of 52 times. Here the heads that share
an input are one weight tensor (in, H, C): their logits are a single matmul x @ W.view(in, H*C), the
summed per-head cross-entropies give every head exactly its own gradient (the heads share no
parameter), and one SGD-momentum update applies each head's own learning rate, scaled by the cosine
schedule. A bank is therefore numerically the same as H independently trained heads fed the same
batches from the same initialisation (see `tests/test_linear.py`).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from bench import timing
from bench.metrics.classification import ClassificationMeter

# DINOv2's grid: 13 learning rates from 1e-5 to 0.1, log-spaced on the 1-2-5 ladder
DINOV2_LRS = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1)


@dataclass(frozen=True)
class HeadSpec:
    n_blocks: int  # CLS tokens of the last n blocks, concatenated oldest first
    avgpool: bool  # append the average-pooled patch tokens of the last block
    lr: float  # base learning rate (before the batch-size scaling)

    @property
    def feature_key(self) -> tuple[int, bool]:
        return self.n_blocks, self.avgpool

    @property
    def name(self) -> str:
        return f"blocks{self.n_blocks}_{'cls+avgpool' if self.avgpool else 'cls'}_lr{self.lr:g}"

    def in_dim(self, embed_dim: int) -> int:
        return embed_dim * (self.n_blocks + int(self.avgpool))

    def as_dict(self) -> dict:
        return {"n_blocks": self.n_blocks, "avgpool": self.avgpool, "lr": self.lr, "name": self.name}


def head_grid(lrs: Sequence[float] = DINOV2_LRS, blocks: Sequence[int] = (1, 4),
              avgpool: Sequence[bool] = (False, True)) -> list[HeadSpec]:
    return [HeadSpec(n, a, lr) for n in blocks for a in avgpool for lr in lrs]


@dataclass(frozen=True)
class LinearConfig:
    epochs: int = 10
    batch_size: int = 1024
    momentum: float = 0.9
    weight_decay: float = 0.0  # DINOv2: no weight decay on the linear heads
    init_std: float = 0.01  # weights ~ N(0, 0.01), bias 0 (DINOv2 LinearClassifier)
    lr_scale_base: int | None = 256  # lr *= batch / 256 (DINOv2's linear scaling rule); None = off

    def lr_scale(self, batch_size: int) -> float:
        return batch_size / self.lr_scale_base if self.lr_scale_base else 1.0


def cosine_factor(step: int, total_steps: int) -> float:
    """CosineAnnealingLR(T_max=total_steps, eta_min=0) in closed form, per iteration."""
    return 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


def effective_batch_size(n_train: int, requested: int = 1024, min_steps_per_epoch: int = 8) -> int:
    """The paper's batch size, or the largest power of two giving ~`min_steps_per_epoch` steps per
    epoch when the train set is too small for it (recorded in the run's params)."""
    if n_train >= requested * min_steps_per_epoch:
        return requested
    return int(min(requested, max(8, 2 ** math.floor(math.log2(max(n_train / min_steps_per_epoch, 1))))))


def linear_input(cls: torch.Tensor, avgpool: torch.Tensor | None, n_blocks: int, use_avgpool: bool) -> torch.Tensor:
    """DINOv2 `create_linear_input`: cls/avgpool are (B, L, D) with the last block at index -1."""
    x = cls[:, -n_blocks:].reshape(cls.shape[0], -1)
    if use_avgpool:
        if avgpool is None:
            raise ValueError("this head needs the average-pooled patch tokens")
        x = torch.cat([x, avgpool[:, -1]], dim=-1)
    return x


def init_head(spec: HeadSpec, embed_dim: int, num_classes: int, seed: int, std: float = 0.01
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial (weight (C, in), bias (C,)) of a head: a function of (seed, spec) only, so a head
    gets the same start in any bank and when trained on its own."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(spec.name.encode())) % 2**63)
    w = torch.randn(num_classes, spec.in_dim(embed_dim), generator=g) * std
    return w, torch.zeros(num_classes)


class LinearBank(nn.Module):
    """H linear heads; those sharing an input live in one (in, H_g, C) weight for one matmul."""

    def __init__(self, specs: Sequence[HeadSpec], embed_dim: int, num_classes: int, seed: int = 0,
                 init_std: float = 0.01):
        super().__init__()
        self.specs = list(specs)
        self.embed_dim, self.num_classes = embed_dim, num_classes
        keys: list[tuple[int, bool]] = []
        for s in self.specs:
            if s.feature_key not in keys:
                keys.append(s.feature_key)
        self.groups = [(k, [i for i, s in enumerate(self.specs) if s.feature_key == k]) for k in keys]
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        lrs = []
        for (n_blocks, avg), members in self.groups:
            w = torch.stack([init_head(self.specs[i], embed_dim, num_classes, seed, init_std)[0].T for i in members], 1)
            self.weights.append(nn.Parameter(w.contiguous()))  # (in, H_g, C)
            self.biases.append(nn.Parameter(torch.zeros(len(members), num_classes)))
            lrs.append(torch.tensor([self.specs[i].lr for i in members], dtype=torch.float32))
        for gi, lr in enumerate(lrs):
            self.register_buffer(f"lr{gi}", lr, persistent=False)
        self._momentum: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.groups)
        self.max_blocks = max(s.n_blocks for s in self.specs)
        self.needs_avgpool = any(s.avgpool for s in self.specs)

    @property
    def num_heads(self) -> int:
        return len(self.specs)

    def forward(self, cls: torch.Tensor, avgpool: torch.Tensor | None = None) -> torch.Tensor:
        """cls, avgpool (B, L, D) -> logits (B, H, C) in spec order."""
        out = None
        for gi, ((n_blocks, avg), members) in enumerate(self.groups):
            x = linear_input(cls, avgpool, n_blocks, avg)
            w, b = self.weights[gi], self.biases[gi]
            logits = torch.addmm(b.view(1, -1), x, w.view(w.shape[0], -1)).view(x.shape[0], len(members), -1)
            if len(self.groups) == 1:
                return logits
            if out is None:
                out = logits.new_empty(x.shape[0], self.num_heads, self.num_classes)
            out[:, members] = logits
        return out

    def train_step(self, cls: torch.Tensor, avgpool: torch.Tensor | None, targets: torch.Tensor,
                   lr_factor: float, momentum: float = 0.9, weight_decay: float = 0.0) -> torch.Tensor:
        """One SGD-momentum step of every head (torch.optim.SGD semantics); returns each head's loss.

        Fused (no autograd): per weight group one addmm gives the logits, the cross-entropy gradient
        (softmax - one-hot) / B is formed in place in that buffer, and one more addmm folds the weight
        gradient into the momentum buffer (buf = momentum * buf + x^T G); the update applies each
        head's learning rate in place. Every pass over the (in, H, C) weights is one the maths needs, so
        the bank costs the matmuls of its heads and nothing else (`train_step_reference` is autograd)."""
        losses = torch.empty(self.num_heads, device=cls.device)
        with torch.no_grad():
            for gi, ((n_blocks, avg), members) in enumerate(self.groups):
                x = linear_input(cls, avgpool, n_blocks, avg)
                w, bias = self.weights[gi], self.biases[gi]
                b, h, c = x.shape[0], len(members), self.num_classes
                w2 = w.view(w.shape[0], h * c)
                z = torch.addmm(bias.view(1, -1), x, w2).view(b, h, c)
                lse = torch.logsumexp(z, dim=2, keepdim=True)  # (B, H, 1)
                at = targets.view(b, 1, 1).expand(b, h, 1)
                losses[members] = (lse - z.gather(2, at)).squeeze(2).mean(0)
                g = z.sub_(lse).exp_()  # softmax, in place
                g.scatter_add_(2, at, torch.full((b, h, 1), -1.0, dtype=g.dtype, device=g.device)).div_(b)
                g2 = g.view(b, h * c)
                mom = self._momentum[gi]
                if mom is None:
                    buf_w, buf_b = x.T @ g2, g2.sum(0)
                    if weight_decay:
                        buf_w.add_(w2, alpha=weight_decay)
                        buf_b.add_(bias.view(-1), alpha=weight_decay)
                    self._momentum[gi] = mom = (buf_w, buf_b)
                else:
                    buf_w, buf_b = mom
                    buf_w.addmm_(x.T, g2, beta=momentum)
                    buf_b.mul_(momentum).add_(g2.sum(0))
                    if weight_decay:
                        buf_w.add_(w2, alpha=weight_decay)
                        buf_b.add_(bias.view(-1), alpha=weight_decay)
                neg_lr = getattr(self, f"lr{gi}") * -lr_factor  # (H_g,)
                w.addcmul_(buf_w.view_as(w), neg_lr.view(1, -1, 1))
                bias.addcmul_(buf_b.view_as(bias), neg_lr.view(-1, 1))
        return losses

    def train_step_reference(self, cls: torch.Tensor, avgpool: torch.Tensor | None, targets: torch.Tensor,
                             lr_factor: float, momentum: float = 0.9, weight_decay: float = 0.0) -> torch.Tensor:
        """The same step through autograd and per-group tensor updates (what `train_step` fuses;
        kept as its reference in tests/test_fused_heads.py)."""
        logits = self(cls, avgpool)
        b, h, c = logits.shape
        loss = F.cross_entropy(logits.reshape(b * h, c), targets.repeat_interleave(h), reduction="none")
        per_head = loss.view(b, h).mean(0)
        for p in self.parameters():
            p.grad = None
        per_head.sum().backward()  # heads share no parameter: each gets exactly its own gradient
        with torch.no_grad():
            for gi in range(len(self.groups)):
                w, bias = self.weights[gi], self.biases[gi]
                lr = getattr(self, f"lr{gi}") * lr_factor  # (H_g,)
                grads = [w.grad, bias.grad]
                if weight_decay:
                    grads = [g.add(p, alpha=weight_decay) for g, p in zip(grads, (w, bias))]
                grads = [grads[0].reshape(w.shape[0], -1), grads[1].reshape(-1)]  # the fused step's layout
                if self._momentum[gi] is None:
                    bufs = tuple(g.clone() for g in grads)
                else:
                    bufs = tuple(buf.mul_(momentum).add_(g) for buf, g in zip(self._momentum[gi], grads))
                self._momentum[gi] = bufs
                w.sub_(bufs[0].view_as(w) * lr.view(1, -1, 1))
                bias.sub_(bufs[1].view_as(bias) * lr.view(-1, 1))
        return per_head.detach()

    def head_state(self, h: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight (C, in), bias (C,)) of head h, as an nn.Linear would hold them."""
        for gi, (_, members) in enumerate(self.groups):
            if h in members:
                j = members.index(h)
                return self.weights[gi][:, j].T.detach().clone(), self.biases[gi][j].detach().clone()
        raise IndexError(h)


# ------------------------------------------------------------------------------------ training
Batch = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]  # (cls, avgpool or None, targets)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of one epoch: a function of (seed, epoch) only."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class CachedFeatures:
    """Frozen features (fp16, CPU) batched for the bank. Only the slices the heads read are used,
    `indices` selects a subset without copying it, the features move to the GPU once when they fit,
    and each batch is converted to fp32 on the bank's device."""

    def __init__(self, feats: dict[str, torch.Tensor], labels: torch.Tensor, n_blocks: int, avgpool: bool,
                 device: torch.device, indices: Sequence[int] | np.ndarray | None = None, gpu_budget: float = 0.3):
        cls = feats["cls"][:, -n_blocks:]
        avg = feats["avgpool"][:, -1:] if avgpool else None
        self.index = None if indices is None else torch.as_tensor(np.asarray(indices), dtype=torch.long)
        store = torch.device("cpu")
        if device.type == "cuda":
            need = cls.numel() * cls.element_size() + (avg.numel() * avg.element_size() if avg is not None else 0)
            free, _ = torch.cuda.mem_get_info(device)
            store = device if need < gpu_budget * free else store
        self.cls = cls.to(store)
        self.avg = avg.to(store) if avg is not None else None
        self.labels = labels.long().to(store)
        self.index = self.index.to(store) if self.index is not None else None
        self.device = device

    def __len__(self) -> int:
        return self.cls.shape[0] if self.index is None else self.index.shape[0]

    def batch(self, idx) -> Batch:
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long, device=self.cls.device)
        if self.index is not None:
            idx = self.index[idx]
        cls = self.cls.index_select(0, idx).to(self.device, non_blocking=True).float()
        avg = self.avg.index_select(0, idx).to(self.device, non_blocking=True).float() if self.avg is not None else None
        return cls, avg, self.labels.index_select(0, idx).to(self.device, non_blocking=True)

    def epoch(self, batch_size: int, seed: int, epoch: int) -> Iterator[Batch]:
        order = epoch_order(len(self), seed, epoch)
        for s in range(0, len(order), batch_size):
            yield self.batch(order[s:s + batch_size])

    def in_order(self, batch_size: int = 1024):
        for s in range(0, len(self), batch_size):
            yield self.batch(np.arange(s, min(s + batch_size, len(self))))


BatchSource = Callable[[int], Iterable[Batch]]


@timing.timed("head_training")
def train_bank(bank: LinearBank, batches: BatchSource, steps_per_epoch: int, cfg: LinearConfig,
               batch_size: int, progress: bool = False, desc: str = "linear bank") -> list[list[float]]:
    """Train every head for cfg.epochs; `batches(epoch)` yields (cls, avgpool, targets) on the bank's
    device. Returns the mean loss of every head per epoch."""
    total = cfg.epochs * steps_per_epoch
    scale = cfg.lr_scale(batch_size)
    step, history = 0, []
    bar = tqdm(total=total, desc=desc, unit="step", disable=not progress, leave=False)
    bank.train()
    for epoch in range(cfg.epochs):
        losses = []
        for cls, avg, y in batches(epoch):
            losses.append(bank.train_step(cls, avg, y, scale * cosine_factor(step, total), cfg.momentum,
                                          cfg.weight_decay))
            step += 1
            bar.update(1)
        history.append(torch.stack(losses).mean(0).tolist())
    bar.close()
    bank.eval()
    return history


@timing.timed("evaluation")
@torch.no_grad()
def evaluate_bank(bank: LinearBank, data: CachedFeatures, batch_size: int = 1024) -> list[dict[str, float]]:
    """top1 / top5 / mean_per_class (percent) of every head."""
    meter = ClassificationMeter(bank.num_heads, bank.num_classes)
    for cls, avg, y in data.in_order(batch_size):
        meter.update(bank(cls, avg), y)
    return meter.results()


def stratified_split(labels: Sequence[int] | np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices; each class with at least 2 samples gives round(fraction * n), at
    least 1, to the held-out part (seeded)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, 7])
    held: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if idx.size < 2:
            continue
        k = min(idx.size - 1, max(1, int(round(fraction * idx.size))))
        held.append(rng.permutation(idx)[:k])
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    mask = np.ones(labels.size, dtype=bool)
    mask[held_idx] = False
    return np.flatnonzero(mask), held_idx


def best_head(scores: Sequence[dict[str, float]], key: str = "top1") -> int:
    """Index of the best head (the first one on ties)."""
    values = [s[key] for s in scores]
    return int(np.argmax(values))


__all__ = ["DINOV2_LRS", "CachedFeatures", "HeadSpec", "LinearBank", "LinearConfig", "best_head", "cosine_factor",
           "effective_batch_size", "epoch_order", "evaluate_bank", "head_grid", "init_head", "linear_input",
           "stratified_split", "train_bank"]
