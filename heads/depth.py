"""Depth probes on frozen features (DINOv2 / DINOv3 depth protocol): depth as classification over
uniform bins, the scale-invariant log loss, the linear (BN + 1x1 conv) head, and a bank trainer that
fits many heads (learning rates x layer choices, or DPT heads) on one pass over cached features.

Why a bank: every head sees the same batches in the same order, so the batch is prepared once; linear
heads that read the same layers are stacked into one module (one normalisation, one batched matmul
for all learning rates), which is what makes a grid cost little more than one head on a GPU. Each head
keeps its own parameters, AdamW state, learning rate, gradient clipping and loss, so a bank member is
the head one gets by training it alone with the same seed (tests check this).

Feature layout everywhere: patches (B, h, w, L, D) — the last L blocks, oldest first — and cls (B, L, D).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Iterator, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from bench import timing
from heads.bank import BankAdamW, ModuleBank, seeded  # noqa: F401  (re-exported: the depth bank's pieces)
from heads.depth_fused import BatchNormed, linear_bins_depth, update_running


# --- depth from bins ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class BinSpec:
    """Depth as a classification over `n_bins` uniform bins in [min_depth, max_depth] (AdaBins "UD")."""

    n_bins: int = 256
    min_depth: float = 1e-3
    max_depth: float = 10.0
    norm: str = "linear"  # linear: relu(l)+0.1 then divide by the sum (DINOv2/DINOv3 default) | softmax

    def centers(self, device=None) -> torch.Tensor:
        return torch.linspace(self.min_depth, self.max_depth, self.n_bins, device=device)


def bins_to_depth(logits: torch.Tensor, spec: BinSpec, dim: int = -3) -> torch.Tensor:
    """Logits with the bins along `dim` (default (..., n_bins, H, W)) -> depth with that dim of size 1:
    the probability-weighted mean of the bin centres.

    "linear" (DINOv2/DINOv3, after AdaBins): p_k = (relu(l_k) + 0.1) / sum_j (relu(l_j) + 0.1). The
    weighted mean is evaluated as (b.r + 0.1 sum b) / (1.r + 0.1 K) with r = relu(l) — the same
    number without materialising the normalised map (less memory traffic at 256 bins)."""
    centers = spec.centers(logits.device).to(logits.dtype)
    last = dim in (-1, logits.dim() - 1)
    shape = [1] * logits.dim()
    shape[dim] = -1
    if spec.norm == "linear":
        r = torch.relu(logits)
        dot = (r @ centers).unsqueeze(-1) if last else (r * centers.view(shape)).sum(dim, keepdim=True)
        num = dot + 0.1 * centers.sum()
        den = r.sum(dim, keepdim=True) + 0.1 * spec.n_bins
        return num / den
    if spec.norm == "softmax":
        p = torch.softmax(logits, dim=dim)
        return (p @ centers).unsqueeze(-1) if last else (p * centers.view(shape)).sum(dim, keepdim=True)
    raise ValueError(f"unknown bin normalisation {spec.norm!r}")


# --- loss ----------------------------------------------------------------------------------------------

SIGLOSS_LAMBDA, SIGLOSS_EPS = 0.15, 1e-3


def sigloss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None, *, lam: float = SIGLOSS_LAMBDA,
            eps: float = SIGLOSS_EPS, warmup: bool = False, reduce_dims: int | None = None) -> torch.Tensor:
    """Scale-invariant log loss as in DINOv2's depth code (SigLoss, after AdaBins / BTS):

        g = log(pred + eps) - log(gt + eps) over the valid pixels (gt > 0) of the whole batch
        loss = sqrt(var(g) + 0.15 * mean(g)^2)          (var unbiased, eps = 1e-3)
        warm-up (DINOv2's first 100 iterations): sqrt(0.15 * mean(g)^2)

    `pred` may carry leading head dimensions (K, B, 1, H, W) against gt (B, 1, H, W): one loss per head.
    Masked sums rather than boolean indexing: the same value without a data-dependent gather."""
    if valid is None:
        valid = gt > 0
    m = valid.to(pred.dtype)
    dims = tuple(range(pred.dim() - gt.dim(), pred.dim())) if reduce_dims is None else reduce_dims
    n = m.sum()
    one = torch.ones((), dtype=pred.dtype, device=pred.device)
    # invalid pixels are replaced by 1 before the logs, so no inf/NaN reaches the sums or the gradient
    g = (torch.log(torch.where(valid, pred, one) + eps) - torch.log(torch.where(valid, gt, one) + eps)) * m
    mean = g.sum(dims) / n
    if warmup:
        return torch.sqrt(lam * mean ** 2)
    centred = (g - mean.reshape(mean.shape + (1,) * gt.dim())) * m
    var = (centred ** 2).sum(dims) / (n - 1)
    return torch.sqrt(var + lam * mean ** 2)


# --- heads ---------------------------------------------------------------------------------------------

class LinearDepthHeads(nn.Module):
    """K stacked DINOv2 "linear" / "linear4" depth heads (BNHead) reading the same layers: patch tokens
    of the last `n_layers` blocks, each concatenated with its block's CLS token -> BatchNorm -> 1x1 conv
    to `n_bins` logits -> x`upsample` bilinear -> bins -> depth. K = 1 is a single head.

    Evaluated at the patch grid: the 1x1 conv and BN's affine map commute with bilinear upsampling, so
    conv-then-upsample equals DINOv2's upsample-then-conv; the one difference is that the BN batch
    statistics come from the patch tokens rather than the 4x-upsampled map. The CLS half of the conv is
    evaluated once per image rather than at every position (same numbers). The BN normalisation is
    shared by the K members (their batch statistics are identical); each member's BN affine is folded
    into its conv weights, which is the same function.
    """

    def __init__(self, embed_dim: int, n_layers: int = 1, use_cls: bool = True, bins: BinSpec = BinSpec(),
                 upsample: int = 4, use_bn: bool = True, k: int = 1, seed: int = 0):
        super().__init__()
        self.n_layers, self.use_cls, self.bins, self.upsample, self.use_bn, self.k = (
            n_layers, use_cls, bins, upsample, use_bn, k)
        c = n_layers * embed_dim
        fan_in = c * (2 if use_cls else 1)
        bound = 1 / math.sqrt(fan_in)  # nn.Conv2d's default init for the full (patch [+ CLS]) 1x1 conv
        w_p, w_c, b = [], [], []
        for _ in range(k):  # every member starts from the same seed: its weights do not depend on K
            with seeded(seed):
                w_p.append(torch.empty(bins.n_bins, c).uniform_(-bound, bound))
                w_c.append(torch.empty(bins.n_bins, c).uniform_(-bound, bound))
                b.append(torch.empty(bins.n_bins).uniform_(-bound, bound))
        self.w_patch = nn.Parameter(torch.stack(w_p))  # (K, n_bins, C)
        self.w_cls = nn.Parameter(torch.stack(w_c)) if use_cls else None
        self.bias = nn.Parameter(torch.stack(b))  # (K, n_bins)
        if use_bn:
            self.bn_weight_patch = nn.Parameter(torch.ones(k, c))
            self.bn_bias_patch = nn.Parameter(torch.zeros(k, c))
            self.register_buffer("bn_mean_patch", torch.zeros(c))
            self.register_buffer("bn_var_patch", torch.ones(c))
            if use_cls:
                self.bn_weight_cls = nn.Parameter(torch.ones(k, c))
                self.bn_bias_cls = nn.Parameter(torch.zeros(k, c))
                self.register_buffer("bn_mean_cls", torch.zeros(c))
                self.register_buffer("bn_var_cls", torch.ones(c))

    def _inputs(self, patches: torch.Tensor, cls: torch.Tensor | None, shared: BatchNormed | None = None):
        """This head's (normalised) patch (B*h*w, C) and CLS (B, C) features. In training, `shared` is
        the batch's normalisation of at least this head's blocks (computed once for a whole bank)."""
        b, h, w, L, d = patches.shape
        c = self.n_layers * d
        if not self.use_bn:
            return (patches.reshape(b * h * w, L * d)[:, L * d - c:],
                    cls.reshape(b, L * d)[:, L * d - c:] if self.use_cls else None)
        if not self.training:
            xp = patches.reshape(b * h * w, L * d)[:, L * d - c:]
            xp = (xp - self.bn_mean_patch) * torch.rsqrt(self.bn_var_patch + 1e-5)
            xc = None
            if self.use_cls:
                xc = (cls.reshape(b, L * d)[:, L * d - c:] - self.bn_mean_cls) * torch.rsqrt(self.bn_var_cls + 1e-5)
            return xp, xc
        if shared is None or shared.xp.shape[1] < c or (self.use_cls and shared.xc is None):
            shared = BatchNormed.of(patches, cls if self.use_cls else None, self.n_layers)
        own = shared.last(c)
        update_running(self.bn_mean_patch, self.bn_var_patch, own.mean_p, own.var_p, b * h * w)
        if self.use_cls:
            update_running(self.bn_mean_cls, self.bn_var_cls, own.mean_c, own.var_c, b * h * w)
        return own.xp, own.xc

    def _terms(self, patches: torch.Tensor, cls: torch.Tensor | None, shared: BatchNormed | None = None):
        """-> normalised patch features (B*h*w, C), weights (K*n_bins, C) with each member's BN affine
        folded in, and the per-image term (B, K*n_bins): bias, BN shift and the CLS half of the conv."""
        b = patches.shape[0]
        k, nb = self.k, self.bins.n_bins
        xp, xc = self._inputs(patches, cls, shared)
        wp, bias = self.w_patch, self.bias
        if self.use_bn:
            bias = bias + torch.einsum("koc,kc->ko", wp, self.bn_bias_patch)
            wp = wp * self.bn_weight_patch[:, None, :]
        per_image = bias.reshape(1, k * nb)
        if self.use_cls:
            wc = self.w_cls
            if self.use_bn:
                per_image = per_image + torch.einsum("koc,kc->ko", wc, self.bn_bias_cls).reshape(1, k * nb)
                wc = wc * self.bn_weight_cls[:, None, :]
            per_image = per_image + xc @ wc.reshape(k * nb, -1).T  # (B, K*n_bins)
        return xp, wp.reshape(k * nb, -1), per_image.expand(b, k * nb)

    def logits(self, patches: torch.Tensor, cls: torch.Tensor | None, shared: BatchNormed | None = None) -> torch.Tensor:
        """patches (B, h, w, L, D), cls (B, L, D), L >= n_layers -> (B, h*w, K, n_bins), the layout the
        matmul produces (bins contiguous)."""
        b, h, w = patches.shape[:3]
        xp, wp, per_image = self._terms(patches, cls, shared)
        out = xp @ wp.T  # one (B*h*w, K*n_bins) matmul for all members
        return (out.reshape(b, h * w, -1) + per_image[:, None, :]).reshape(b, h * w, self.k, self.bins.n_bins)

    def forward(self, patches: torch.Tensor, cls: torch.Tensor | None = None,
                shared: BatchNormed | None = None) -> torch.Tensor:
        """-> depth (K, B, 1, H, W) with H, W = upsample x the patch grid."""
        b, h, w = patches.shape[:3]
        if self.upsample == 1 and self.bins.norm == "linear":  # conv + decode + their backward fused
            xp, wp, per_image = self._terms(patches, cls, shared)
            depth = linear_bins_depth(xp, wp, per_image, self.bins.centers(xp.device).to(xp.dtype))  # (B*h*w, K)
            return depth.view(b, h * w, self.k).permute(2, 0, 1).reshape(self.k, b, 1, h, w)
        logits = self.logits(patches, cls, shared)
        if self.upsample == 1:  # decode along the contiguous bins dimension
            depth = bins_to_depth(logits, self.bins, dim=-1)  # (B, h*w, K, 1)
            return depth.permute(2, 0, 3, 1).reshape(self.k, b, 1, h, w)
        x = logits.permute(2, 0, 3, 1).reshape(self.k * b, -1, h, w)
        x = F.interpolate(x, scale_factor=self.upsample, mode="bilinear", align_corners=False)
        return bins_to_depth(x, self.bins).reshape(self.k, b, 1, *x.shape[-2:])

    def member(self, j: int) -> "LinearDepthHeads":
        """Member j as a stand-alone head (K = 1), weights and BN statistics copied."""
        one = LinearDepthHeads.__new__(LinearDepthHeads)
        nn.Module.__init__(one)
        one.n_layers, one.use_cls, one.bins, one.upsample, one.use_bn, one.k = (
            self.n_layers, self.use_cls, self.bins, self.upsample, self.use_bn, 1)
        for name, p in self._parameters.items():
            if p is not None:
                one.register_parameter(name, nn.Parameter(p.detach()[j:j + 1].clone()))
            else:
                one.register_parameter(name, None)
        for name, buf in self._buffers.items():
            one.register_buffer(name, buf.clone())
        return one.train(self.training)


# --- the bank ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of every head in a bank: AdamW (betas 0.9/0.999, wd 1e-2, as DINOv3's depth eval),
    DINOv2-style schedule (linear warm-up, then linear decay to zero), per-head gradient clipping
    (DINOv3: 35), SigLoss warm-up iterations (DINOv2: 100 of 38,400)."""

    iterations: int = 2000
    batch_size: int = 8
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_fraction: float = 0.1
    grad_clip: float | None = 35.0
    sigloss_warmup: int = 0
    target_stride: int = 1  # train targets at (input size / stride); 1 = the encoder input resolution

    def lr_factor(self, step: int) -> float:
        warm = max(1, round(self.warmup_fraction * self.iterations))
        if step < warm:
            return (step + 1) / warm
        return max(0.0, 1 - (step - warm) / max(1, self.iterations - warm))

    def as_params(self) -> dict:
        return {f"train.{k}": v for k, v in asdict(self).items()}


@dataclass
class DepthFeatures:
    """Cached encoder features of one split (as the cache stores them: possibly memory-mapped), with
    depth targets for training. `rows` selects a subset without copying: `patches`, `cls` and
    `targets` stay the whole split's tensors and each batch gathers only its rows, so a split larger
    than memory (the full NYU train set) can be trained on."""

    patches: torch.Tensor  # (N, L, h, w, D) fp16
    cls: torch.Tensor  # (N, L, D) fp16
    targets: torch.Tensor | None = None  # (N, H, W) integer depth in dataset units (0 = invalid)
    depth_scale: float = 1.0
    rows: torch.Tensor | None = None  # the subset's rows of the tensors above; None = all of them

    def __len__(self) -> int:
        return self.patches.shape[0] if self.rows is None else len(self.rows)

    def _rows(self, idx: torch.Tensor) -> torch.Tensor:
        idx = torch.as_tensor(idx, dtype=torch.long)
        return idx if self.rows is None else self.rows[idx]

    def batch(self, idx: torch.Tensor, device: torch.device | str = "cpu"):
        """-> patches (B, h, w, L, D) fp32, cls (B, L, D) fp32, target (B, 1, H, W) metres or None."""
        r = self._rows(idx)
        p = self.patches[r].to(device, non_blocking=True).permute(0, 2, 3, 1, 4).float()
        c = self.cls[r].to(device, non_blocking=True).float()
        t = None
        if self.targets is not None:
            t = self.targets[r].to(device).float().div_(self.depth_scale).unsqueeze(1)
        return p, c, t

    def subset(self, idx: Sequence[int]) -> "DepthFeatures":
        return DepthFeatures(self.patches, self.cls, self.targets, self.depth_scale,
                             self._rows(torch.as_tensor(list(idx), dtype=torch.long)))

    def target_rows(self) -> torch.Tensor:
        """The subset's targets (N_subset, H, W), gathered."""
        return self.targets if self.rows is None else self.targets[self.rows]

    def mean_valid_depth(self, lo: float, hi: float, chunk: int = 256) -> float:
        """Mean of the targets (metres) in (lo, hi) over the subset, read in chunks (never the whole
        split as floats at once)."""
        total, count = 0.0, 0
        for s in range(0, len(self), chunk):
            t = self.targets[self._rows(torch.arange(s, min(s + chunk, len(self))))].double() / self.depth_scale
            m = (t > lo) & (t < hi)
            total, count = total + float(t[m].sum()), count + int(m.sum())
        return total / count if count else float("nan")


def batch_order(n: int, batch_size: int, iterations: int, seed: int) -> Iterator[torch.Tensor]:
    """Shuffled epochs (a fresh permutation each pass), `iterations` batches in all (partial batches
    at the end of an epoch are dropped)."""
    g = torch.Generator().manual_seed(seed)
    bs = min(batch_size, n)
    done = 0
    while done < iterations:
        perm = torch.randperm(n, generator=g)
        for s in range(0, n - bs + 1, bs):
            yield perm[s:s + bs]
            done += 1
            if done == iterations:
                return


def _slots(banks: Sequence[nn.Module], lrs: Sequence[Sequence[float]], device) -> tuple[list, int]:
    slots, offset = [], 0
    for bank, bank_lrs in zip(banks, lrs):
        lr = torch.tensor(list(bank_lrs), dtype=torch.float32, device=device)
        if isinstance(bank, ModuleBank):
            for j, head in enumerate(bank.heads):
                for p in head.parameters():
                    slots.append((p, torch.tensor(offset + j, device=device), lr[j]))
        else:
            ids = torch.arange(offset, offset + bank.k, device=device)
            for p in bank.parameters():
                slots.append((p, ids, lr.reshape((-1,) + (1,) * (p.dim() - 1))))
        offset += bank.k
    return slots, offset


@dataclass
class BankResult:
    losses: list[list[float]] = field(default_factory=list)  # per head, every 10th step
    diverged: list[bool] = field(default_factory=list)
    seconds: float = 0.0


@timing.timed("head_training")
def train_bank(banks: Sequence[nn.Module], lrs: Sequence[Sequence[float]], data: DepthFeatures, cfg: TrainConfig, *,
               seed: int = 0, device: torch.device | str = "cpu", progress: bool = False,
               desc: str = "depth heads") -> BankResult:
    """Train every head of every bank on the same batches (one preparation per batch for all)."""
    t0 = time.perf_counter()
    device = torch.device(device)
    for bank in banks:
        bank.to(device).train()
    slots, n_heads = _slots(banks, lrs, device)
    normed = [b for b in banks if isinstance(b, LinearDepthHeads) and b.use_bn]  # their BN input normalised once a step
    widest = max((b.n_layers for b in normed), default=0)
    use_cls = any(b.use_cls for b in normed)
    opt = BankAdamW(slots, cfg, n_heads)
    alive = torch.ones(n_heads, dtype=torch.bool, device=device)
    curves: list[list[float]] = [[] for _ in range(n_heads)]
    bar = tqdm(total=cfg.iterations, desc=desc, unit="it", disable=not progress, leave=False)
    for step, idx in enumerate(batch_order(len(data), cfg.batch_size, cfg.iterations, seed)):
        patches, cls, target = data.batch(idx, device)
        valid = target > 0
        for p, _, _ in slots:
            p.grad = None
        shared = BatchNormed.of(patches, cls if use_cls else None, widest) if widest else None
        preds = [bank(patches, cls, shared=shared) if isinstance(bank, LinearDepthHeads) else bank(patches, cls)
                 for bank in banks]  # each (K, B, 1, h, w)
        # heads predicting at one size are upsampled and scored together (the loss is per head)
        groups: dict[tuple, list[int]] = {}
        for i, pred in enumerate(preds):
            groups.setdefault(tuple(pred.shape[1:]), []).append(i)
        per_bank: list[torch.Tensor | None] = [None] * len(preds)
        for members in groups.values():
            pred = torch.cat([preds[i] for i in members]) if len(members) > 1 else preds[members[0]]
            k, b = pred.shape[:2]
            pred = F.interpolate(pred.flatten(0, 1), size=target.shape[-2:], mode="bilinear", align_corners=False)
            losses = sigloss(pred.reshape(k, b, *pred.shape[1:]), target, valid, warmup=step < cfg.sigloss_warmup)
            for i, part in zip(members, losses.split([preds[i].shape[0] for i in members])):
                per_bank[i] = part
        loss = torch.cat(per_bank)
        finite = torch.isfinite(loss).detach()
        alive &= finite
        loss[alive].sum().backward()  # heads share no parameter: each gets its own loss's gradient
        opt.clip(alive)
        opt.step(cfg.lr_factor(step))
        if step % 10 == 0 or step == cfg.iterations - 1:
            for j, v in enumerate(loss.detach().cpu().tolist()):
                curves[j].append(v)
        bar.update(1)
    bar.close()
    for bank in banks:
        bank.eval()
    return BankResult(curves, (~alive).cpu().tolist(), time.perf_counter() - t0)


@timing.timed("evaluation")
@torch.inference_mode()
def predict(head: nn.Module, data: DepthFeatures, batch_size: int = 16, device: torch.device | str = "cpu",
            size: tuple[int, int] | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (indices, depth (K, B, 1, H, W) on the CPU) over a split, upsampled (bilinear) to `size`."""
    head.eval().to(device)
    for s in range(0, len(data), batch_size):
        idx = torch.arange(s, min(s + batch_size, len(data)))
        p, c, _ = data.batch(idx, device)
        out = head(p, c)
        if out.dim() == 4:
            out = out[None]
        if size is not None:
            k, b = out.shape[:2]
            out = F.interpolate(out.flatten(0, 1), size=size, mode="bilinear", align_corners=False)
            out = out.reshape(k, b, *out.shape[1:])
        yield idx, out.float().cpu()
