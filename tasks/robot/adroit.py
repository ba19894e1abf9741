"""CortexBench Adroit (pen-v0, relocate-v0) on gymnasium-robotics `AdroitHand{Pen,Relocate}-v1`, MuJoCo 3.

One `AdroitEnv` = one episode at a time, implementing `tasks.robot.env.SuiteEnv`:

- horizon: pen **100** (gymnasium registers 200; CortexBench/mj_envs use 100), relocate 200. Never done earlier
  (both envs return terminated=False; mjrl would stop only on done).
- camera: `vil_camera` (pos 0 -1.2 1.2, quat .92388 .382683 0 0, the mj_envs pose), 256x256 through `mujoco.Renderer`,
  which returns upright images: **no flip** (mj_envs' `[::-1]` undid mujoco-py's bottom-up buffer; the test checks
  this by projecting a body into the image).
- proprio: pen `obs[:24]` (hand joints), relocate `obs[:30]` (arm + hand joints), float32.
- score: 100 if the per-step goal condition held on more than 20 (pen) / 25 (relocate) steps of the episode, else 0.
  The per-step condition is gymnasium-robotics' `info["success"]`, identical to mj_envs' `goal_achieved`
  (pen: ||obj - eps_ball|| < 0.075 and orientation dot > 0.95; relocate: ||obj - target|| < 0.1).
- seeding: `reset(seed)` -> `env.reset(seed=seed)` reseeds `np_random`, which draws the pen target orientation or the
  relocate object/target positions (the mj_envs distributions); a pure function of `seed`.
- physics: MuJoCo 2.x collision by default (`legacy_ccd=True` sets mjDSBL_NATIVECCD: libccd instead of MuJoCo >= 3.2's
  native convex collision), closer to the mujoco-py sim CortexBench ran; `legacy_ccd=False` is plain gymnasium-robotics.
- reward: the env's dense reward; relocate's has gymnasium-robotics 1.4.2's sign slip (+0.1||palm-obj||) corrected back to
  mj_envs' -0.1||palm-obj||. Rewards are only logged (the score never uses them).
- state(): the env's 45-d (pen) / 39-d (relocate) observation, the input of the DAPG experts.

Experts: the DAPG policies of aravindr93/hand_dapg (Apache-2.0), as safetensors (`experts/adroit/`, see README there).
Only numpy, mujoco, gymnasium-robotics and safetensors are imported, all lazily.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.robot.env import Episode, StepInfo


@dataclass(frozen=True)
class AdroitSpec:
    key: str              # "pen" / "relocate"
    gym_id: str
    entry: str            # module:Class in gymnasium_robotics
    horizon: int
    proprio_dim: int
    obs_dim: int
    action_dim: int
    success_steps: int    # success iff sum(success) > this
    expert_file: str
    expert_sha256: str


SPECS: dict[str, AdroitSpec] = {
    "pen": AdroitSpec("pen", "AdroitHandPen-v1", "gymnasium_robotics.envs.adroit_hand.adroit_pen:AdroitHandPenEnv",
                      horizon=100, proprio_dim=24, obs_dim=45, action_dim=24, success_steps=20,
                      expert_file="pen-v0.safetensors",
                      expert_sha256="a3e3ef26634f771f22c782eec90bbcc43acabd956b36033175eb26f2f5e868c9"),
    "relocate": AdroitSpec("relocate", "AdroitHandRelocate-v1",
                           "gymnasium_robotics.envs.adroit_hand.adroit_relocate:AdroitHandRelocateEnv",
                           horizon=200, proprio_dim=30, obs_dim=39, action_dim=30, success_steps=25,
                           expert_file="relocate-v0.safetensors",
                           expert_sha256="6fe330b8a76ddfff4f5b6889c8f8dd8f869827638b826158c8f47cea89fea5a9"),
}
_ALIASES = {"pen": "pen", "pen-v0": "pen", "adroithandpen-v1": "pen", "cortexbench-adroit-pen": "pen",
            "relocate": "relocate", "relocate-v0": "relocate", "adroithandrelocate-v1": "relocate",
            "cortexbench-adroit-relocate": "relocate"}

CAMERA = "vil_camera"
RENDER_SIZE = 256

#: where the expert weights are looked up, in order: the shared checkout next to the repo, then the package copy.
SHARED_EXPERT_DIR = Path(__file__).parents[2] / ".." / "shared" / "experts" / "adroit"
PACKAGE_EXPERT_DIR = Path(__file__).parent / "experts" / "adroit"


def canonical_name(name: str) -> str:
    key = _ALIASES.get(name.strip().lower())
    if key is None:
        raise ValueError(f"unknown Adroit task {name!r} (pen, relocate)")
    return key


def _import_mujoco() -> Any:
    from bench.data.synth.gl import select_gl_backend

    select_gl_backend()  # EGL / OSMesa, chosen once before mujoco is imported
    import mujoco

    return mujoco


def _load_class(entry: str) -> Any:
    _import_mujoco()
    import importlib

    module, cls = entry.split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("the Adroit suite needs gymnasium-robotics==1.4.2 "
                          "(pip install gymnasium-robotics==1.4.2)") from e


class AdroitEnv:
    """A CortexBench Adroit task as a `SuiteEnv` (see the module docstring for every convention)."""

    def __init__(self, name: str, *, image_size: int = RENDER_SIZE, shadowsize: int | None = None,
                 render: bool = True, legacy_ccd: bool = True) -> None:
        """`shadowsize`: MuJoCo shadow map (None/0: the scene's 4096); `render=False`: state-only (render() refuses)."""
        self.spec = SPECS[canonical_name(name)]
        self.name = self.spec.key
        self.horizon = self.spec.horizon
        self.action_dim = self.spec.action_dim
        self.proprio_dim = self.spec.proprio_dim
        self.size = int(image_size)
        self._want_render = bool(render)
        self._mujoco = _import_mujoco()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # relocate's reward-sign warning: corrected in step()
            self._env = _load_class(self.spec.entry)(reward_type="dense")
        model = self._env.model
        if legacy_ccd:
            model.opt.disableflags |= int(self._mujoco.mjtDisableBit.mjDSBL_NATIVECCD)
        if shadowsize:
            model.vis.quality.shadowsize = int(shadowsize)
        self._cam_id = self._mujoco.mj_name2id(model, self._mujoco.mjtObj.mjOBJ_CAMERA, CAMERA)
        if self._cam_id < 0:  # pragma: no cover - asset change
            raise RuntimeError(f"{self.spec.gym_id} has no camera {CAMERA!r}")
        self._renderer: Any = None
        self._obs: np.ndarray | None = None
        self._t = 0

    # ---- SuiteEnv -------------------------------------------------------------------------------
    def reset(self, seed: int) -> None:
        obs, _ = self._env.reset(seed=int(seed))
        self._obs = np.asarray(obs, dtype=np.float64)
        self._t = 0

    def render(self) -> np.ndarray:
        if not self._want_render:
            raise RuntimeError(f"{self!r} was built with render=False")
        if self._renderer is None:
            self._renderer = self._mujoco.Renderer(self._env.model, self.size, self.size)
        self._renderer.update_scene(self._env.data, camera=self._cam_id)
        return np.ascontiguousarray(self._renderer.render(), dtype=np.uint8)

    def proprio(self) -> np.ndarray:
        return self._require_obs()[: self.proprio_dim].astype(np.float32)

    def step(self, action: np.ndarray) -> tuple[float, StepInfo]:
        self._require_obs()
        if self._t >= self.horizon:
            raise RuntimeError(f"adroit-{self.name}: step past the horizon ({self.horizon})")
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(self.action_dim), -1.0, 1.0)
        obs, reward, _term, _trunc, info = self._env.step(a)
        self._obs = np.asarray(obs, dtype=np.float64)
        self._t += 1
        reward = float(reward)
        if self.name == "relocate":  # gymnasium-robotics 1.4.2: +0.1||palm-obj||; mj_envs: -0.1||palm-obj||
            e = self._env
            palm = e.data.site_xpos[e.S_grasp_site_id]
            obj = e.data.xpos[e.obj_body_id]
            reward -= 0.2 * float(np.linalg.norm(palm - obj))
        return reward, {"success": float(bool(info["success"]))}

    def score(self, episode: Episode) -> float:
        return score_episode(self.name, episode)

    def state(self) -> np.ndarray:
        return self._require_obs().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        env, self._env = getattr(self, "_env", None), None
        if env is not None:
            env.close()

    # ---- helpers --------------------------------------------------------------------------------
    @property
    def t(self) -> int:
        return self._t

    @property
    def unwrapped(self) -> Any:
        """The gymnasium-robotics env (model/data, `get_env_state`)."""
        return self._env

    def _require_obs(self) -> np.ndarray:
        if self._obs is None:
            raise RuntimeError("call reset(seed) first")
        return self._obs

    def __repr__(self) -> str:
        return f"AdroitEnv({self.spec.gym_id}, horizon={self.horizon}, camera={CAMERA})"


def score_episode(name: str, episode: Episode) -> float:
    """CortexBench's Adroit rule (mj_envs `evaluate_success`): 100 if the goal held on > k steps (pen 20, relocate 25)."""
    spec = SPECS[canonical_name(name)]
    achieved = sum(1 for _r, info in episode if float(info.get("success", 0.0)) > 0.5)
    return 100.0 if achieved > spec.success_steps else 0.0


def make_adroit_env(name: str, **kwargs: Any) -> AdroitEnv:
    return AdroitEnv(name, **kwargs)


# ---- DAPG experts --------------------------------------------------------------------------------
def expert_path(name: str) -> Path:
    """The expert's safetensors file: the shared checkout if present, else the packaged copy; sha256-checked."""
    spec = SPECS[canonical_name(name)]
    for folder in (SHARED_EXPERT_DIR, PACKAGE_EXPERT_DIR):
        path = folder / spec.expert_file
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != spec.expert_sha256:
                raise RuntimeError(f"{path}: sha256 {digest} != expected {spec.expert_sha256}")
            return path.resolve()
    raise FileNotFoundError(f"DAPG expert {spec.expert_file} not found in {SHARED_EXPERT_DIR} or {PACKAGE_EXPERT_DIR}")


class DAPGExpert:
    """The hand_dapg mjrl MLP, deterministic (evaluation-mode) mean action on `env.state()`:
    h = (x - in_shift) / (in_scale + 1e-8); h = tanh(fc0(h)); h = tanh(fc1(h)); a = fc2(h) * out_scale + out_shift,
    clipped to [-1, 1] (the env clips too)."""

    def __init__(self, name: str, path: Path | None = None) -> None:
        from safetensors import safe_open
        from safetensors.numpy import load_file

        self.name = canonical_name(name)
        self.path = Path(path) if path is not None else expert_path(self.name)
        t = {k: np.asarray(v, dtype=np.float64) for k, v in load_file(str(self.path)).items()}
        with safe_open(str(self.path), framework="numpy") as f:
            meta = f.metadata() or {}
        self.meta = json.loads(meta["json"]) if "json" in meta else {}
        self.layers = [(t[f"fc{i}.weight"], t[f"fc{i}.bias"]) for i in range(3)]
        self.in_shift, self.in_scale = t["in_shift"], t["in_scale"]
        self.out_shift, self.out_scale = t["out_shift"], t["out_scale"]
        spec = SPECS[self.name]
        if self.layers[0][0].shape[1] != spec.obs_dim or self.layers[-1][0].shape[0] != spec.action_dim:
            raise ValueError(f"{self.path}: shapes do not match {spec.gym_id}")

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        h = (np.asarray(obs, dtype=np.float64) - self.in_shift) / (self.in_scale + 1e-8)
        for w, b in self.layers[:-1]:
            h = np.tanh(h @ w.T + b)
        w, b = self.layers[-1]
        mean = (h @ w.T + b) * self.out_scale + self.out_shift
        return np.clip(mean, -1.0, 1.0).astype(np.float32)

    def act(self, env: Any) -> np.ndarray:
        return self(env.state())


def make_adroit_expert(name: str, env: Any = None) -> DAPGExpert:
    return DAPGExpert(name)


def run_expert(name: str, seeds: list[int] | range, **env_kwargs: Any) -> list[dict[str, float]]:
    """Roll the DAPG expert out without rendering: per seed its score (0/100), success steps and return."""
    env, expert = AdroitEnv(name, **env_kwargs), DAPGExpert(name)
    out = []
    try:
        for s in seeds:
            env.reset(s)
            ep = [env.step(expert.act(env)) for _ in range(env.horizon)]
            out.append({"seed": float(s), "score": env.score(ep),
                        "success_steps": float(sum(i["success"] for _, i in ep)),
                        "return": float(sum(r for r, _ in ep))})
    finally:
        env.close()
    return out


__all__ = ["AdroitEnv", "AdroitSpec", "CAMERA", "DAPGExpert", "SPECS", "canonical_name", "expert_path",
           "make_adroit_env", "make_adroit_expert", "run_expert", "score_episode"]
