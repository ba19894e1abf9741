"""CortexBench rollouts: environment steps/s with the 256x256 render included (what one evaluation
frame costs before the encoder), and the lockstep speed-up: N evaluation episodes stepped together
with one batched encoder call per step (tasks/robot/rollout.py) against the same N episodes one at a
time (eai-vc's loop, batch 1). Episodes are cut to a short horizon here (speed only, not the protocol)."""
from __future__ import annotations

import time

import numpy as np
import torch

from bench.perf import PerfRow, perf_case


class _Short:
    """A suite env with a shorter horizon (perf only: the protocol never shortens horizons)."""

    def __init__(self, env, horizon: int) -> None:
        self.env, self.horizon = env, horizon
        self.action_dim, self.proprio_dim = env.action_dim, env.proprio_dim

    def __getattr__(self, name):
        return getattr(self.env, name)


def _steps_per_s(suite: str, name: str, steps: int, render: bool) -> float:
    from tasks.robot.suites import make_env

    env = make_env(suite, name, image_size=256, shadowsize=1024, render=render)
    try:
        env.reset(100)
        steps = min(steps, env.horizon)  # one episode: the suites refuse steps past their horizon
        zero = np.zeros(env.action_dim, dtype=np.float32)
        if render:
            env.render()  # GL context creation is not a step
        t0 = time.perf_counter()
        for _ in range(steps):
            if render:
                env.render()
            env.step(zero)
        return steps / (time.perf_counter() - t0)
    finally:
        env.close()


@perf_case("robot rollouts")
def robot_rollouts(args) -> list[PerfRow]:
    from bench.data.synth.gl import select_gl_backend
    from bench.encoders import load_encoder
    from bench.features import FeatureSpec, autocast_for, resolve_device, select_features

    select_gl_backend()
    from tasks.robot.demos import preprocess_frames
    from tasks.robot.policy import BCPolicy
    from tasks.robot.rollout import evaluate
    from tasks.robot.suites import make_env

    device = resolve_device(args.device)
    rows = []
    steps = 20 if args.quick else 100
    # dm_control first: it must import triton before any EGL library is loaded (tasks/robot/dmc.py)
    for suite, name in (("dmc", "reacher-easy"), ("metaworld", "drawer-open"), ("adroit", "pen")):
        try:
            rendered = _steps_per_s(suite, name, steps, True)
            sim = _steps_per_s(suite, name, steps * 5, False)
        except ImportError as exc:  # a suite's simulator package is missing
            rows.append(PerfRow(f"robot {suite} {name}: env steps/s", float("nan"), None, f"skipped: {exc}"))
            continue
        rows.append(PerfRow(f"robot {suite} {name}: env steps/s (render)", rendered, None,
                            f"256x256, shadow 1024, {device.type} GL; sim only {sim:.0f} steps/s"))

    encoder = load_encoder("vit-tiny").to(device).eval()
    spec = FeatureSpec(("cls",), 1)

    def embed(frames):
        x = preprocess_frames(frames, encoder.preprocess).to(device)
        with torch.no_grad(), autocast_for(device):
            out = encoder(x, n_last_blocks=spec.n_last_blocks)
        return select_features(out, spec)["cls"][:, -1].float().cpu().numpy()

    n, horizon = (4, 10) if args.quick else (8, 40)
    envs = [_Short(make_env("metaworld", "drawer-open", image_size=256, shadowsize=1024), horizon) for _ in range(n)]
    dim = 3 * encoder.embed_dim + envs[0].proprio_dim
    policy = BCPolicy(dim, envs[0].action_dim, (256, 256, 256), 0.01, seed=0)
    try:
        for e in envs:  # GL contexts and first renders outside the timing
            e.reset(0)
            e.render()
        embed(np.stack([envs[0].render()]))
        t0 = time.perf_counter()
        together, _ = evaluate(envs, 100, lambda e: e.render(), embed, policy.act)
        t_lock = time.perf_counter() - t0
        t0 = time.perf_counter()
        alone = [evaluate([envs[ep]], 100 + ep, lambda e: e.render(), embed, policy.act)[0][0] for ep in range(n)]
        t_seq = time.perf_counter() - t0
    finally:
        for e in envs:
            e.close()
    same = "same scores" if np.allclose(together, alone) else f"SCORES DIFFER {together} vs {alone}"
    rows.append(PerfRow("robot lockstep eval: N episodes together / one at a time", t_lock / t_seq, 0.9,
                        f"MetaWorld drawer-open, {n} episodes x {horizon} steps, vit-tiny on {device.type}: "
                        f"{t_lock:.1f} s vs {t_seq:.1f} s ({t_seq / t_lock:.2f}x speed-up); {same}"))
    return rows
