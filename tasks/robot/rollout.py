"""Evaluation episodes of one policy, stepped in lockstep: N envs, one batched embedding call per
step (no semantic change from eai-vc's one-frame-at-a-time loop: the policy is deterministic and
episode ep is seeded `base_seed + ep`). Also the expert demo recorder (one episode at a time)."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from tasks.robot.env import Expert, SuiteEnv
from tasks.robot.fusion import History

Observe = Callable[[SuiteEnv], np.ndarray]  # env -> one observation (a 256x256x3 frame, or a state)
Embed = Callable[[np.ndarray], np.ndarray]  # (N, ...) observations -> (N, D) embeddings
Act = Callable[[np.ndarray], np.ndarray]  # (N, in_dim) policy inputs -> (N, A) actions


def evaluate(envs: Sequence[SuiteEnv], base_seed: int, observe: Observe, embed: Embed, act: Act,
             use_proprio: bool = True, record: int = -1, record_every: int = 1,
             record_n: int = 1, history: bool = True) -> tuple[list[float], list[np.ndarray]]:
    """Run len(envs) full episodes (seeds base_seed + ep) to the suite's horizon; returns the
    per-episode scores (the suite's rule) and, when `record` >= 0, frames of episodes
    record .. record + record_n - 1 side by side (every `record_every` steps). `history=False`
    (TriFinger): the policy input is [e(t), proprio], no FLARE."""
    n = len(envs)
    for ep, env in enumerate(envs):
        env.reset(base_seed + ep)
    horizon = envs[0].horizon
    hist = History()
    episodes: list[list[tuple[float, dict[str, float]]]] = [[] for _ in range(n)]
    frames: list[np.ndarray] = []
    for t in range(horizon):
        obs = np.stack([observe(env) for env in envs])
        if 0 <= record < n and t % record_every == 0 and obs.ndim == 4:
            frames.append(np.concatenate(list(obs[record:record + record_n]), axis=1))
        emb = embed(obs)
        proprio = np.stack([env.proprio() for env in envs]) if use_proprio else None
        if history:
            hist.push(emb)
            x = hist.fused(proprio)
        else:
            x = np.concatenate([np.asarray(emb, np.float32), *([proprio.astype(np.float32)] if proprio is not None else [])], 1)
        actions = act(x)
        for i, env in enumerate(envs):
            episodes[i].append(env.step(actions[i]))
    return [envs[0].score(e) for e in episodes], frames


def record_demo(env: SuiteEnv, expert: Expert, seed: int, render: bool = True) -> dict[str, np.ndarray]:
    """One expert episode: per step the observation before the action (frame, proprio, state) and
    the action; `score` is the suite's episode score (MetaWorld: success at the last step)."""
    env.reset(seed)
    frames, proprio, states, actions, episode = [], [], [], [], []
    for _ in range(env.horizon):
        if render:
            frames.append(env.render())
        proprio.append(env.proprio())
        states.append(env.state())
        a = expert.act(env)
        actions.append(a)
        episode.append(env.step(a))
    out = {"proprio": np.stack(proprio), "states": np.stack(states), "actions": np.stack(actions).astype(np.float32),
           "score": np.float32(env.score(episode)), "seed": np.int64(seed)}
    if render:
        out["frames"] = np.stack(frames)
    return out


__all__ = ["evaluate", "record_demo"]
