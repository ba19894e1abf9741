"""State-based SAC experts for the DMControl tasks without a scripted controller (walker-stand,
walker-walk, cheetah-run, finger-spin): CortexBench's demos came from URLB DDPG experts whose weights
were never published, so we train our own with stable-baselines3 and record everything about them.

Made only by the explicit `bench robot experts` command (tasks/robot/cli.py), never by a benchmark
run. One folder per env, `sources.sac_expert_dir(env)`:

- `checkpoint.pt`: the whole SAC state every `checkpoint_every` steps (policy, critics, optimisers,
  entropy coefficient, replay buffer, step / episode counters, RNG states), one atomic file read back
  with `torch.load(weights_only=True)`; a killed run resumes from it (the episode in flight restarts).
- `expert.safetensors` + `expert.json`: the actor only (tanh of the Gaussian mean: the deterministic
  expert), its seed, steps, wall time, hyper-parameters and its score on the CortexBench eval seeds.

Training episodes use task seeds 1,000,000 x (seed + 1) + k (episode k), disjoint from the eval
(100-325) and demo (54321 + i) seeds. Asking for more steps than cached continues the same run.
"""
from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tasks.robot.sac_expert import SACExpert
from tasks.robot.sources import SAC_ENVS, sac_expert_dir

#: default training budgets (steps) per env: what the literature needs for a good state SAC expert
DEFAULT_STEPS = {"walker-stand": 200_000, "walker-walk": 500_000, "cheetah-run": 1_000_000, "finger-spin": 500_000}


@dataclass(frozen=True)
class SACParams:
    """SB3 SAC on the flattened dm_control observation (standard state-DMC settings, 256-256 nets for CPU)."""

    learning_rate: float = 3e-4
    buffer_size: int = 1_000_000
    learning_starts: int = 5000
    batch_size: int = 256
    tau: float = 0.005
    gamma: float = 0.99
    net_arch: tuple[int, ...] = (256, 256)


def _atomic(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def make_gym_env(name: str, seed: int) -> Any:
    """The DMC task as a gymnasium env on `state()` (no rendering): truncated at 1000 steps."""
    import gymnasium as gym

    from tasks.robot.dmc import DMCEnv

    class DMCStateEnv(gym.Env):
        metadata: dict = {"render_modes": []}

        def __init__(self) -> None:
            self.env = DMCEnv(name, render=False)
            self.env.reset(0)
            dim = self.env.state().shape[0]
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
            self.action_space = gym.spaces.Box(-1.0, 1.0, (self.env.action_dim,), np.float32)
            self.episodes = 0  # training episodes started (restored on resume)

        def reset(self, *, seed: int | None = None, options: dict | None = None):
            super().reset(seed=seed)
            self.env.reset(1_000_000 * (base_seed + 1) + self.episodes)
            self.episodes += 1
            return self.env.state().astype(np.float32), {}

        def step(self, action):
            reward, _ = self.env.step(action)
            return self.env.state().astype(np.float32), reward, False, self.env.t >= self.env.horizon, {}

        def close(self) -> None:
            self.env.close()

    base_seed = int(seed)
    return DMCStateEnv()


def _save_checkpoint(model: Any, gym_env: Any, path: Path, wall_s: float) -> None:
    import torch

    rb = model.replay_buffer
    n = rb.buffer_size if rb.full else rb.pos
    state = {
        "num_timesteps": int(model.num_timesteps), "n_updates": int(model._n_updates),
        "episode_num": int(model._episode_num), "env_episodes": int(gym_env.episodes), "wall_s": float(wall_s),
        "policy": model.policy.state_dict(), "actor_opt": model.actor.optimizer.state_dict(),
        "critic_opt": model.critic.optimizer.state_dict(), "log_ent_coef": model.log_ent_coef.detach().clone(),
        "ent_opt": model.ent_coef_optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
        "rb_pos": int(rb.pos), "rb_full": bool(rb.full),
        "rb": {k: torch.from_numpy(np.ascontiguousarray(getattr(rb, k)[:n]))
               for k in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")},
    }
    _atomic(path, lambda tmp: torch.save(state, tmp))
    path.chmod(0o644)


def _load_checkpoint(model: Any, gym_env: Any, path: Path) -> float:
    import torch

    state = torch.load(path, weights_only=True)
    model.policy.load_state_dict(state["policy"])
    model.actor.optimizer.load_state_dict(state["actor_opt"])
    model.critic.optimizer.load_state_dict(state["critic_opt"])
    with torch.no_grad():
        model.log_ent_coef.copy_(state["log_ent_coef"])
    model.ent_coef_optimizer.load_state_dict(state["ent_opt"])
    torch.set_rng_state(state["torch_rng"])
    rb = model.replay_buffer
    for k, v in state["rb"].items():
        getattr(rb, k)[: len(v)] = v.numpy()
    rb.pos, rb.full = state["rb_pos"], state["rb_full"]
    model.num_timesteps, model._n_updates = state["num_timesteps"], state["n_updates"]
    model._episode_num = state["episode_num"]
    gym_env.episodes = state["env_episodes"]
    return float(state["wall_s"])


def export_actor(model: Any, path: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    actor = model.actor
    linears = [m for m in actor.latent_pi if hasattr(m, "weight")] + [actor.mu]
    tensors = {}
    for i, layer in enumerate(linears):
        tensors[f"fc{i}.weight"] = layer.weight.detach().cpu().contiguous()
        tensors[f"fc{i}.bias"] = layer.bias.detach().cpu().contiguous()
    _atomic(path, lambda tmp: save_file(tensors, tmp, metadata={"json": json.dumps(meta)}))


def expert_info(name: str) -> dict | None:
    """The cached expert's record (expert.json), or None when there is none."""
    folder = sac_expert_dir(name)
    info = folder / "expert.json"
    if not (info.exists() and (folder / "expert.safetensors").exists()):
        return None
    return json.loads(info.read_text())


def evaluate_expert(name: str, expert: Any, seeds: list[int]) -> list[float]:
    from tasks.robot.dmc import run_policy

    return run_policy(name, expert, seeds, render=False)


EVAL_SEEDS = [s + ep for s in (100, 200, 300) for ep in range(10)]  # the paper protocol's DMC eval episodes


def train_expert(name: str, steps: int, seed: int = 0, checkpoint_every: int = 10_000, progress: bool = True,
                 params: SACParams = SACParams(), eval_seeds: list[int] | None = None, threads: int = 1,
                 say: Callable[[str], None] = print) -> dict:
    """Train (or resume, or extend) the SAC expert of `name` to `steps` env steps; returns expert.json's dict.
    `threads`: torch intra-op threads; 1 is fastest for 256-wide nets at batch 256 (2 threads on a busy
    2-core machine measured 30x slower per matmul: OpenMP contention)."""
    import stable_baselines3
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm import tqdm

    from tasks.robot.dmc import canonical_name

    torch.set_num_threads(int(threads))
    key = canonical_name(name)
    if key not in SAC_ENVS:
        raise ValueError(f"{key} has a scripted expert; SAC experts are for {', '.join(SAC_ENVS)}")
    if steps < 1 or checkpoint_every < 1:
        raise ValueError("steps and checkpoint_every must be >= 1")
    folder = sac_expert_dir(key)
    ckpt, out_json, out_weights = folder / "checkpoint.pt", folder / "expert.json", folder / "expert.safetensors"
    info = expert_info(key)
    if info is not None and info["seed"] != seed:
        raise ValueError(f"{folder} holds an expert trained with seed {info['seed']}; pass --seed {info['seed']} "
                         f"to extend it, or delete the folder to start over with seed {seed}")
    if info is not None and info["steps"] >= steps:
        say(f"{key}: cached expert ({info['steps']} steps, seed {seed}, score {info.get('eval_score_mean')}) at {folder}")
        return info
    folder.mkdir(parents=True, exist_ok=True)
    run_json = folder / "run.json"
    if run_json.exists() and json.loads(run_json.read_text())["seed"] != seed:
        raise ValueError(f"{ckpt} belongs to seed {json.loads(run_json.read_text())['seed']}; delete {folder} to restart")
    run_json.write_text(json.dumps({"env": key, "seed": seed, "params": asdict(params)}))
    gym_env = make_gym_env(key, seed)
    model = SAC("MlpPolicy", gym_env, learning_rate=params.learning_rate, buffer_size=params.buffer_size,
                learning_starts=params.learning_starts, batch_size=params.batch_size, tau=params.tau,
                gamma=params.gamma, policy_kwargs={"net_arch": list(params.net_arch)}, seed=seed, device="cpu",
                verbose=0)
    wall_before = 0.0
    if ckpt.exists():
        wall_before = _load_checkpoint(model, gym_env, ckpt)
        say(f"{key}: resumed at step {model.num_timesteps} from {ckpt}")
    t0 = time.perf_counter()
    bar = tqdm(total=steps, initial=model.num_timesteps, desc=f"SAC {key}", unit="step", disable=not progress)

    class Checkpoints(BaseCallback):
        def _on_step(self) -> bool:
            bar.update(1)
            return True

        def _on_rollout_end(self) -> None:  # after the step's transition is in the buffer (on_step is before)
            if self.model.num_timesteps % checkpoint_every == 0:
                _save_checkpoint(self.model, gym_env, ckpt, wall_before + time.perf_counter() - t0)

    try:
        remaining = steps - model.num_timesteps
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=Checkpoints(), reset_num_timesteps=False)
        wall = wall_before + time.perf_counter() - t0
        _save_checkpoint(model, gym_env, ckpt, wall)
    finally:
        bar.close()
        gym_env.close()
    meta = {"env": key, "seed": seed, "steps": int(model.num_timesteps), "wall_s": round(wall, 1),
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "stable_baselines3": stable_baselines3.__version__, "params": asdict(params),
            "train_seeds": f"1000000*(seed+1)+episode, {gym_env.episodes} episodes"}
    tmp_weights = folder / "actor.tmp.safetensors"
    export_actor(model, tmp_weights, meta)
    seeds = EVAL_SEEDS if eval_seeds is None else list(eval_seeds)
    scores = evaluate_expert(key, SACExpert(tmp_weights), seeds) if seeds else []
    meta.update(eval_seeds=seeds, eval_scores=[round(s, 2) for s in scores],
                eval_score_mean=round(statistics.fmean(scores), 2) if scores else None)
    export_actor(model, out_weights, meta)
    tmp_weights.unlink()
    _atomic(out_json, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
    for p in (out_weights, out_json):
        p.chmod(0o644)
    say(f"{key}: {meta['steps']} steps in {wall / 60:.1f} min; return/10 on {len(seeds)} eval episodes "
        f"{meta['eval_score_mean']} -> {out_weights}")
    return json.loads(out_json.read_text())  # what a later call reads back (tuples as lists)


__all__ = ["DEFAULT_STEPS", "EVAL_SEEDS", "SACExpert", "SACParams", "evaluate_expert", "expert_info", "export_actor",
           "make_gym_env", "train_expert"]
