"""CortexBench TriFinger behaviour cloning (eai-vc `trifinger_vc`: `algos/bc_finetune.py`, `utils/policy.py`,
`config/bc_default.yaml`, `config/task/reach_cube.yaml`), on the shared BC core (`bc.py`) with TriFinger's own loop:

- input: the frozen embedding of camera60 (270x270, the encoder's own resize/crop) + `ft_pos_cur` (9, cm);
  no history (eai-vc `state_type: ftpos_obj`); `rep_to_policy` "none" (raw embedding, the README command) or
  "linear_layer" (a trainable Linear(D, 784) + ReLU, the default config; the paper's choice is unknown);
- policy: `DeterministicPolicy` Linear(in, 2000) -> ReLU -> Linear(2000, 2000) -> ReLU -> Linear(2000, A),
  PyTorch default init (no BN, no last-layer scaling); actions clipped to +-max_a (reach 5 cm) at eval;
- training: MSE, AdamW (lr 1e-4, weight decay 0), batch 32, shuffled; one sample per (demo, step): 5 per
  reach demo (eai-vc: T-1 of 6 downsampled observations);
- evaluation: before training and after every `eval_every`-th pass ((e + 1) % 5 == 0: 21 evaluations in 100
  epochs); one deterministic episode per test demo start (here: seeds test_seed + ep, the same for every
  protocol seed, as eai-vc's fixed test demos 100-124); score = mean 100 x scaled_success at the last step,
  best over evaluations (`diff-110_max_avg_scaled_reward`), mean over protocol seeds.
Deviations are listed in docs/robot.md (robot model, expert sampling, demo filter, splits)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from bench.config import ConfigError
from tasks.robot.bc import CortexBenchBC
from tasks.robot.config import BCConfig, Counts


@dataclass(frozen=True)
class TriFingerConfig(BCConfig):
    HISTORIES: ClassVar[tuple[int, ...]] = (0,)
    history: int = 0  # TriFinger's loop has no frame history
    hidden: tuple[int, ...] = (2000, 2000)
    batch_size: int = 32
    lr: float = 1e-4
    last_layer_scale: float = 1.0  # eai-vc DeterministicPolicy: PyTorch default init, unscaled
    weight_decay: float = 0.0  # AdamW
    rep_to_policy: str = "none"  # "none" | "linear_layer" (trainable Linear(D, 784) + ReLU)
    image_size: int = 270  # camera60 renders (the encoder resizes to 256 and crops 224)
    test_seed: int = 1_000_000  # test episode ep starts from seed test_seed + ep (every protocol seed)
    demo_min_score: float = 90.0  # keep demos whose final scaled_success >= 0.9 (docs/robot.md)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rep_to_policy not in ("none", "linear_layer"):
            raise ConfigError("TriFinger config: rep_to_policy: one of none, linear_layer")
        if self.weight_decay < 0:
            raise ConfigError("TriFinger config: weight_decay >= 0")


class TriFingerPolicy(nn.Module):
    """eai-vc `DeterministicPolicy` (+ the optional `linear_layer` head on the embedding)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...], max_a: float, seed: int,
                 embed_dim: int = 0, rep_head: bool = False) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed_dim = embed_dim
            self.head = nn.Sequential(nn.Linear(embed_dim, 784), nn.ReLU()) if rep_head else None
            dims = ((in_dim - embed_dim + 784) if rep_head else in_dim, *hidden)
            layers: list[nn.Module] = []
            for a, b in zip(dims[:-1], dims[1:]):
                layers += [nn.Linear(a, b), nn.ReLU()]
            self.body = nn.Sequential(*layers, nn.Linear(dims[-1], out_dim))
        self.max_a = float(max_a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head is not None:
            x = torch.cat([self.head(x[:, : self.embed_dim]), x[:, self.embed_dim:]], 1)
        return self.body(x)

    @torch.no_grad()
    def act(self, x: np.ndarray) -> np.ndarray:
        was = self.training
        self.eval()
        out = self(torch.as_tensor(np.asarray(x, dtype=np.float32))).clamp(-self.max_a, self.max_a).numpy()
        self.train(was)
        return out


class TriFingerBC(CortexBenchBC):
    Config = TriFingerConfig
    uses_history = False
    mujoco_render = False
    gif_every = 1  # five policy steps per episode

    def run(self, ctx, cfg: TriFingerConfig):
        self.demo_min_score = cfg.demo_min_score
        ctx.log_params(**{"trifinger.robot": "trifingeredu (eai-vc: trifinger_meta = edu/trifingernyu.urdf, fork only)",
                          "trifinger.test_seeds": f"{cfg.test_seed}+ep", "trifinger.rep_to_policy": cfg.rep_to_policy})
        return super().run(ctx, cfg)

    def policy_inputs(self, emb: np.ndarray, proprio: np.ndarray | None) -> np.ndarray:
        parts = [np.asarray(emb, np.float32)] + ([np.asarray(proprio, np.float32)] if proprio is not None else [])
        return np.concatenate(parts, axis=1)

    def build_policy(self, cfg: TriFingerConfig, in_dim: int, out_dim: int, seed: int) -> nn.Module:
        from tasks.robot.trifinger import SPECS, canonical_name

        spec = SPECS[canonical_name(self.options["env"])]
        embed_dim = in_dim - (9 if cfg.proprio else 0)
        return TriFingerPolicy(in_dim, out_dim, tuple(cfg.hidden), spec.max_a, seed, embed_dim,
                               rep_head=cfg.rep_to_policy == "linear_layer")

    def build_optimizer(self, cfg: TriFingerConfig, policy: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def eval_schedule(self, c: Counts) -> set[int]:
        """Before training (-1) and after epoch e if (e + 1) % eval_every == 0 (eai-vc bc_finetune), plus the last."""
        return {-1, c.epochs - 1, *(e for e in range(c.epochs) if (e + 1) % c.eval_every == 0)}

    def eval_base_seed(self, cfg: TriFingerConfig, seed: int) -> int:
        return cfg.test_seed


__all__ = ["TriFingerBC", "TriFingerConfig", "TriFingerPolicy"]
