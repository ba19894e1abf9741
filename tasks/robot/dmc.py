"""CortexBench DMControl (walker/stand, walker/walk, reacher/easy, cheetah/run, finger/spin) on dm_control, MuJoCo 3.

One `DMCEnv` = one episode at a time, implementing `tasks.robot.env.SuiteEnv`:

- horizon: 1000 control steps (each domain's native time limit / control timestep; frame skip 1, as upstream dmc2gym).
- camera: `camera_id=0`, 256x256 (walker/cheetah "side", reacher "fixed", finger "cam0"), `physics.render`, upright.
- proprio: none (shape (0,)); CortexBench's DMC config has `add_proprio: False`.
- score: undiscounted return / 10 (max 1000 -> 100; eai-vc#14), never the demo-relative score.
- seeding: **deliberate deviation** (cortexbench.md section 3.2): the task RNG is reset to `RandomState(seed)` at every
  `reset(seed)`, so each episode's initial state is a pure function of its seed (identical to
  `suite.load(..., task_kwargs={"random": seed})`; the test checks it). dmc2gym seeded only the spaces.
- actions: clipped to the action spec ([-1, 1] for all five).
- state(): the flattened dm_control observation (the `OrderedDict` order), float64 - the input of state experts.

Experts: `ReacherExpert` (scripted, reacher/easy only): damped-least-squares IK step toward the target from the
state, PD-tracked. Walker, cheetah and finger: state SAC experts (`tasks/robot/sac.py`, made by `bench robot experts`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tasks.robot.env import Episode, StepInfo


@dataclass(frozen=True)
class DMCSpec:
    key: str        # "walker-stand"
    domain: str
    task: str
    camera: str     # name of camera 0 (documentation; the env renders camera_id=0)


SPECS: dict[str, DMCSpec] = {s.key: s for s in (
    DMCSpec("walker-stand", "walker", "stand", "side"),
    DMCSpec("walker-walk", "walker", "walk", "side"),
    DMCSpec("reacher-easy", "reacher", "easy", "fixed"),
    DMCSpec("cheetah-run", "cheetah", "run", "side"),
    DMCSpec("finger-spin", "finger", "spin", "cam0"),
)}
HORIZON = 1000
CAMERA_ID = 0
RENDER_SIZE = 256
EXPERT_TASKS = ("reacher-easy",)  # scripted; the others use a cached SAC expert


def canonical_name(name: str) -> str:
    """'walker-stand', 'walker_stand', 'walker/stand', 'dmc_walker_stand-v1', 'cortexbench-dmcontrol-walker-stand'."""
    n = name.strip().lower()
    for prefix in ("cortexbench-dmcontrol-", "dmcontrol-", "dmc_", "dmc-"):
        if n.startswith(prefix):
            n = n[len(prefix):]
    if n.endswith("-v1"):
        n = n[:-3]
    n = n.replace("_", "-").replace("/", "-")
    if n not in SPECS:
        raise ValueError(f"unknown DMControl task {name!r} ({', '.join(SPECS)})")
    return n


def _gl_loaded() -> bool:
    """Is an offscreen GL stack (EGL, OSMesa, Mesa's drivers) already mapped into this process? Then importing
    triton is unsafe. (Plain libGL, which some Python packages map on import, is harmless.)"""
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return True  # unknown: do not risk the import
    return any(lib in maps for lib in ("libEGL", "libOSMesa", "libgallium", "_dri.so"))


def _import_suite() -> Any:
    import importlib.util

    from bench.data.synth.gl import select_gl_backend

    if importlib.util.find_spec("triton") is not None and not _gl_loaded():
        # torch's optimisers import triton lazily; importing it after dm_control has loaded Mesa's EGL
        # segfaults (bench/data/synth/pipeline.py), so load it first while that is still safe
        import triton  # noqa: F401
    select_gl_backend()  # EGL / OSMesa, chosen once before mujoco is imported
    from dm_control import suite

    return suite


class DMCEnv:
    """A CortexBench DMControl task as a `SuiteEnv` (see the module docstring for every convention)."""

    proprio_dim = 0

    def __init__(self, name: str, *, image_size: int = RENDER_SIZE, shadowsize: int | None = None,
                 render: bool = True) -> None:
        """`shadowsize`: MuJoCo shadow map (None/0: the scene's 2048); `render=False`: state-only (render() refuses)."""
        self.spec = SPECS[canonical_name(name)]
        self.name = self.spec.key
        suite = _import_suite()
        self._env = suite.load(self.spec.domain, self.spec.task, task_kwargs={"random": 0})
        phys = self._env.physics
        if shadowsize:
            phys.model.vis.quality.shadowsize = int(shadowsize)  # before the first render creates the GL context
        steps = self._env._step_limit  # time_limit / control_timestep
        self.horizon = int(round(steps))
        if self.horizon != HORIZON:  # pragma: no cover - dm_control change
            raise RuntimeError(f"{self.name}: {self.horizon} control steps, expected {HORIZON}")
        spec = self._env.action_spec()
        self.action_dim = int(spec.shape[0])
        self._lo, self._hi = np.asarray(spec.minimum, np.float64), np.asarray(spec.maximum, np.float64)
        self.size = int(image_size)
        self._want_render = bool(render)
        self._obs: np.ndarray | None = None
        self._t = 0

    # ---- SuiteEnv -------------------------------------------------------------------------------
    def reset(self, seed: int) -> None:
        self._env.task._random = np.random.RandomState(int(seed))
        ts = self._env.reset()
        self._obs = _flatten(ts.observation)
        self._t = 0

    def render(self) -> np.ndarray:
        if not self._want_render:
            raise RuntimeError(f"{self!r} was built with render=False")
        self._require_obs()
        img = self._env.physics.render(height=self.size, width=self.size, camera_id=CAMERA_ID)
        return np.ascontiguousarray(img, dtype=np.uint8)

    def proprio(self) -> np.ndarray:
        return np.zeros((0,), dtype=np.float32)

    def step(self, action: np.ndarray) -> tuple[float, StepInfo]:
        self._require_obs()
        if self._t >= self.horizon:
            raise RuntimeError(f"dmc-{self.name}: step past the horizon ({self.horizon})")
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(self.action_dim), self._lo, self._hi)
        ts = self._env.step(a)
        self._obs = _flatten(ts.observation)
        self._t += 1
        return float(ts.reward or 0.0), {}

    def score(self, episode: Episode) -> float:
        return score_episode(episode)

    def state(self) -> np.ndarray:
        return self._require_obs().copy()

    def close(self) -> None:
        env, self._env = getattr(self, "_env", None), None
        if env is not None:
            env.physics.free()  # the physics' GL contexts
            env.close()

    # ---- helpers --------------------------------------------------------------------------------
    @property
    def t(self) -> int:
        return self._t

    @property
    def physics(self) -> Any:
        return self._env.physics

    @property
    def unwrapped(self) -> Any:
        """The dm_control `control.Environment`."""
        return self._env

    def _require_obs(self) -> np.ndarray:
        if self._obs is None:
            raise RuntimeError("call reset(seed) first")
        return self._obs

    def __repr__(self) -> str:
        return f"DMCEnv({self.spec.domain}/{self.spec.task}, horizon={self.horizon}, camera_id=0)"


def _flatten(obs: Any) -> np.ndarray:
    return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in obs.values()])


def score_episode(episode: Episode) -> float:
    """CortexBench DMC: undiscounted return / 10 (1000 steps, reward <= 1 each -> 0..100)."""
    return float(sum(float(r) for r, _info in episode)) / 10.0


def make_dmc_env(name: str, **kwargs: Any) -> DMCEnv:
    return DMCEnv(name, **kwargs)


# ---- scripted reacher ---------------------------------------------------------------------------
class ReacherExpert:
    """reacher/easy from the state [shoulder, wrist, to_target_x, to_target_y, qvel_shoulder, qvel_wrist]:
    dq = J^T (J J^T + lam I)^-1 e (damped least squares toward the target), torque = kp * dq - kd * qvel.
    Links 0.12 + 0.12 (reacher.xml: hand at .12, finger at .12), shoulder at the origin, joints about +z."""

    L1 = L2 = 0.12

    def __init__(self, kp: float = 20.0, kd: float = 1.0, lam: float = 1e-3, max_step: float = 1.0) -> None:
        self.kp, self.kd, self.lam, self.max_step = kp, kd, lam, max_step

    def __call__(self, state: np.ndarray) -> np.ndarray:
        q1, q2, ex, ey, v1, v2 = (float(x) for x in np.asarray(state, dtype=np.float64)[:6])
        s1, c1, s12, c12 = np.sin(q1), np.cos(q1), np.sin(q1 + q2), np.cos(q1 + q2)
        jac = np.array([[-self.L1 * s1 - self.L2 * s12, -self.L2 * s12],
                        [self.L1 * c1 + self.L2 * c12, self.L2 * c12]])
        e = np.array([ex, ey])
        dq = jac.T @ np.linalg.solve(jac @ jac.T + self.lam * np.eye(2), e)
        n = float(np.linalg.norm(dq))
        if n > self.max_step:
            dq *= self.max_step / n
        tau = self.kp * dq - self.kd * np.array([v1, v2])
        return np.clip(tau, -1.0, 1.0).astype(np.float32)

    def act(self, env: Any) -> np.ndarray:
        return self(env.state())


class ZeroExpert:
    """The zero-action baseline (tests, sanity rows)."""

    def __init__(self, action_dim: int) -> None:
        self.action_dim = action_dim

    def act(self, env: Any) -> np.ndarray:
        return np.zeros(self.action_dim, dtype=np.float32)


def make_dmc_expert(name: str, env: Any = None) -> Any:
    """reacher-easy: the scripted controller; the other four: the cached SAC expert (`bench robot experts`)."""
    key = canonical_name(name)
    if key == "reacher-easy":
        return ReacherExpert()
    from tasks.robot.sac_expert import SACExpert
    from tasks.robot.sources import sac_expert_dir

    path = sac_expert_dir(key) / "expert.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"no SAC expert for {key} at {path}: run `bench robot experts --env {key}` first")
    return SACExpert(path)


def run_policy(name: str, policy: Any, seeds: list[int] | range, **env_kwargs: Any) -> list[float]:
    """Scores (return / 10) of `policy.act(env)` on seeded episodes, without rendering."""
    env = DMCEnv(name, **env_kwargs)
    out = []
    try:
        for s in seeds:
            env.reset(s)
            out.append(env.score([env.step(policy.act(env)) for _ in range(env.horizon)]))
    finally:
        env.close()
    return out


__all__ = ["DMCEnv", "DMCSpec", "EXPERT_TASKS", "HORIZON", "ReacherExpert", "SPECS", "ZeroExpert",
           "canonical_name", "make_dmc_env", "make_dmc_expert", "run_policy", "score_episode"]
