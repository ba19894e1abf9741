"""The eai-vc BC policy (mjrl `BatchNormMLP` @83d35df): BatchNorm1d on the input only -> hidden
Linear+ReLU layers -> Linear to the action; PyTorch default init, then the last layer's weight and
bias x 0.01. Trained with MSE, Adam (lr 1e-3, no decay), batch 256, shuffled; deterministic at eval
(the mean action; BN running statistics)."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class BCPolicy(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...] = (256, 256, 256),
                 last_layer_scale: float = 0.01, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # eai-vc seeds torch with the run seed before building
            torch.manual_seed(seed)
            self.input_bn = nn.BatchNorm1d(in_dim)
            layers: list[nn.Module] = []
            dims = (in_dim, *hidden)
            for a, b in zip(dims[:-1], dims[1:]):
                layers += [nn.Linear(a, b), nn.ReLU()]
            self.body = nn.Sequential(*layers)
            self.last = nn.Linear(dims[-1], out_dim)
        with torch.no_grad():
            self.last.weight.mul_(last_layer_scale)
            self.last.bias.mul_(last_layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.body(self.input_bn(x)))

    @torch.no_grad()
    def act(self, x: np.ndarray) -> np.ndarray:
        """Deterministic actions for a batch of policy inputs (eval mode: BN running stats)."""
        was = self.training
        self.eval()
        out = self(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()
        self.train(was)
        return out


def make_optimizer(policy: BCPolicy, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(policy.parameters(), lr=lr)


def train_epoch(policy: BCPolicy, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                gen: torch.Generator) -> float:
    """One pass over all samples in a fresh shuffled order (DataLoader(shuffle=True) semantics:
    the last batch may be short). Returns the mean batch loss."""
    policy.train()
    loss_fn = nn.MSELoss()
    order = torch.randperm(len(x), generator=gen)
    total, n = 0.0, 0
    for s in range(0, len(x), batch_size):
        idx = order[s:s + batch_size]
        if len(idx) < 2:  # BatchNorm1d cannot train on one sample (DataLoader would fail the same way)
            continue
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(policy(x[idx]), y[idx])
        loss.backward()
        opt.step()
        total += float(loss.detach())
        n += 1
    return total / max(n, 1)


def best_over(evals: list[tuple[int, float]]) -> tuple[float, int]:
    """(best score, its epoch): the running max over evaluations (the first epoch reaching it);
    NaN never wins. eai-vc's `eval/highest_success`."""
    best, epoch = -math.inf, -1
    for e, v in evals:
        if not math.isnan(v) and v > best:
            best, epoch = v, e
    if epoch < 0:
        raise ValueError("no finite evaluation to take the best of")
    return best, epoch


__all__ = ["BCPolicy", "best_over", "make_optimizer", "train_epoch"]
