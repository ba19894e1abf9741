"""Toy tasks for the contract tests: importing this module registers them (the runner's child
process imports it too, to find an OWN_PROCESS task again). Tests remove them afterwards."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from bench.features import FeatureSpec
from bench.metrics import Metric
from bench.task import AggregateTask, Need, RolloutTask, Task, TaskMeta, TaskResult
from tasks import register_aggregate, register_task

NAMES = ("toy-width", "toy-depth", "toy-suite", "toy-own-process", "toy-reach", "toy-broken", "toy-nan")


@dataclass(frozen=True)
class ToyConfig:
    scale: float = 1.0


class EncoderShape(Task):
    """A 'task' whose score is a fixed function of the encoder's shape (scaled by the config)."""

    Config = ToyConfig

    def run(self, ctx, cfg: ToyConfig) -> TaskResult:
        value = float(ctx.encoder.embed_dim if self.options["what"] == "width" else ctx.encoder.num_blocks)
        return TaskResult({"value": cfg.scale * value}, {"part:a": {"value": value}})


class Broken(Task):
    """Fails the way a bad input does (or returns a NaN score), to check that the others still run."""

    Config = ToyConfig

    def run(self, ctx, cfg) -> TaskResult:
        if self.options["how"] == "raise":
            raise ValueError("the toy data is unreadable")
        return TaskResult({"value": float("nan")})


class OwnProcess(Task):
    Config = ToyConfig

    def run(self, ctx, cfg) -> TaskResult:
        ctx.log_params(child_pid=os.getpid())
        return TaskResult({"in_child": float(os.getpid() != int(os.environ["TOY_PARENT_PID"]))})


def render(x: float, size: int = 32) -> torch.Tensor:
    """A normalised image whose left half brightens with x in [-1, 1] (the state is in the pixels)."""
    img = torch.full((3, size, size), -1.0)
    img[:, :, : size // 2] = float(x)
    return img


@dataclass(frozen=True)
class ReachConfig:
    episodes: int = 8
    steps: int = 12
    demos: int = 24


class Reach(RolloutTask):
    """A 1-D reach: the state x is only visible in the pixels; the expert steps halfway to 0.
    Behaviour cloning by least squares on frozen features must learn to reach."""

    Config = ReachConfig
    trained = 0  # how many policies were fitted (resume test)

    def envs(self, cfg):
        return ("left", "right")

    def demos(self, ctx, cfg, env):
        rng = ctx.np_rng(f"demos/{env}")
        xs = rng.uniform(-1, 0, cfg.demos) if env == "left" else rng.uniform(0, 1, cfg.demos)
        images = torch.stack([render(x) for x in xs])
        return ctx.encode(images, FeatureSpec(("cls",), 1))["cls"][:, -1].cpu().numpy(), -0.5 * xs

    def train_policy(self, ctx, cfg, env, demos, seed, state):
        feats, actions = demos
        X = np.c_[feats, np.ones(len(feats))]
        w = np.linalg.lstsq(X, actions, rcond=None)[0]
        type(self).trained += 1
        np.save(state / "policy.npy", w)
        return w

    def rollout(self, ctx, cfg, env, policy, seed):
        rng = np.random.default_rng(seed)
        ok = 0
        for _ in range(cfg.episodes):
            x = rng.uniform(-1, 0) if env == "left" else rng.uniform(0, 1)
            for _ in range(cfg.steps):
                f = ctx.encode(render(x)[None], FeatureSpec(("cls",), 1))["cls"][0, -1].cpu().numpy()
                x = float(np.clip(x + np.r_[f, 1.0] @ policy, -1, 1))
            ok += abs(x) < 0.1
        return {"success": 100.0 * ok / cfg.episodes}


VALUE = (Metric("value", True, "a number", ""),)
register_task(TaskMeta("toy-width", "classification", "embed dim", VALUE, "value", needs=Need.NONE), EncoderShape,
              what="width")
register_task(TaskMeta("toy-depth", "classification", "blocks", VALUE, "value", needs=Need.NONE), EncoderShape,
              what="depth")
register_aggregate(AggregateTask(TaskMeta("toy-suite", "classification", "mean of the toys", VALUE, "value",
                                          needs=Need.NONE), ("toy-width", "toy-depth")))
register_task(TaskMeta("toy-own-process", "robot", "runs in a child", (Metric("in_child", True, ""),), "in_child",
                       needs=Need.OWN_PROCESS), "tests.toy_tasks:OwnProcess")
register_task(TaskMeta("toy-reach", "robot", "1-D reach by behaviour cloning",
                       (Metric("success", True, "episodes ending within 0.1 of the goal (%)", "%"),
                        Metric("success_std", False, "std over seeds", "%", "diagnostic")), "success",
                       needs=Need.ONLINE_ENCODER | Need.SIMULATOR, seeds=(1, 2)), Reach)
register_task(TaskMeta("toy-broken", "classification", "always fails", VALUE, "value", needs=Need.NONE), Broken,
              how="raise")
register_task(TaskMeta("toy-nan", "classification", "a NaN score", VALUE, "value", needs=Need.NONE), Broken,
              how="nan")
