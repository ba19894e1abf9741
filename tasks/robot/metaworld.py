"""MetaWorld for CortexBench (paper Table 4), ported to metaworld 3.1.1 / MuJoCo 3.3 (see docs/robot.md):

- the five R3M tasks as `<name>-v3-goal-observable`, `_freeze_rand_vec = False`, so each `reset`
  draws a layout from the global `np.random`, seeded per episode (`np.random.seed(seed)`, the
  caller's global state restored afterwards) exactly as mjrl's `do_rollout` does;
- `top_cap2` (gone in v3) reproduced as a free camera: lookat (0, 0.6, 0), distance 0.6708,
  azimuth -90, elevation -63.43 (camera at (0, 0.9, 0.6) looking at `tablelink`), 256x256, upright;
- proprioception = obs[:4] (hand xyz + gripper opening); horizon 500, never done;
- score = 100 x `info['success']` at the LAST of the 500 steps (not "ever succeeded");
- experts: `metaworld.policies.<Task>V3Policy` on the 39-d state obs.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bench.data.synth.gl import select_gl_backend

select_gl_backend()  # before mujoco is imported (MUJOCO_GL is read once)

import mujoco  # noqa: E402

TASKS = ("assembly", "bin-picking", "button-press-topdown", "drawer-open", "hammer")
HORIZON = 500
PROPRIO_DIM = 4
# top_cap2 of the suraj-nair-1 fork (xyz_base.xml: targetbody "tablelink" at (0, 0.6, 0), pos (0, 0.9, 0.6))
TOP_CAP2 = dict(lookat=(0.0, 0.6, 0.0), distance=0.6708, azimuth=-90.0, elevation=-63.43)
SCENE_SHADOWSIZE = 4096  # what the MetaWorld scene asks for


def top_cap2_camera() -> "mujoco.MjvCamera":
    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.lookat[:] = TOP_CAP2["lookat"]
    cam.distance = TOP_CAP2["distance"]
    cam.azimuth = TOP_CAP2["azimuth"]
    cam.elevation = TOP_CAP2["elevation"]
    return cam


def free_camera_position(lookat: Sequence[float], distance: float, azimuth: float, elevation: float) -> np.ndarray:
    """Where MuJoCo puts a free camera: lookat - distance * forward(azimuth, elevation)."""
    a, e = np.deg2rad(azimuth), np.deg2rad(elevation)
    forward = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    return np.asarray(lookat, dtype=float) - distance * forward


def env_id(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown CortexBench MetaWorld task {task!r} (one of {', '.join(TASKS)})")
    return f"{task}-v3-goal-observable"


class MetaWorldEnv:
    """One MetaWorld task behind the `tasks.robot.env.SuiteEnv` interface."""

    horizon = HORIZON
    action_dim = 4
    proprio_dim = PROPRIO_DIM

    def __init__(self, task: str, image_size: int = 256, shadowsize: int = 1024, reflection: bool = True,
                 render: bool = True) -> None:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

        self.task = task
        self.env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[env_id(task)](seed=0)  # seed: keeps global np.random intact
        self.env._freeze_rand_vec = False
        self.env.max_path_length = HORIZON
        self.image_size = image_size
        self.shadowsize = shadowsize
        self.reflection = reflection  # the table's reflection: ~4x the CPU render cost (docs/robot.md)
        self._renderer: Any = None
        self._want_render = render
        self._camera = top_cap2_camera()
        self._obs: np.ndarray | None = None
        self.t = 0

    # -------------------------------------------------------------------------------- episode
    def reset(self, seed: int) -> None:
        state = np.random.get_state()
        try:
            np.random.seed(seed)  # the layout (rand_vec) comes from the global np.random
            self.env.seed(seed)
            obs, _ = self.env.reset()
        finally:
            np.random.set_state(state)
        self._obs = np.asarray(obs, dtype=np.float64)
        self.t = 0

    def step(self, action: np.ndarray) -> tuple[float, dict[str, float]]:
        if self.t >= HORIZON:
            raise RuntimeError(f"{self.task}: step past the horizon ({HORIZON})")
        a = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        obs, reward, _, _, info = self.env.step(a)
        self._obs = np.asarray(obs, dtype=np.float64)
        self.t += 1
        return float(reward), {"success": float(info.get("success", 0.0))}

    @staticmethod
    def score(episode: Sequence[tuple[float, dict[str, float]]]) -> float:
        """CortexBench's MetaWorld rule: success at the last step (x100), not "ever succeeded"."""
        if not episode:
            return 0.0
        return 100.0 * float(bool(episode[-1][1]["success"]))

    # ---------------------------------------------------------------------------- observation
    def proprio(self) -> np.ndarray:
        assert self._obs is not None, "reset first"
        return self._obs[:PROPRIO_DIM].astype(np.float32)

    def state(self) -> np.ndarray:
        assert self._obs is not None, "reset first"
        return self._obs.astype(np.float32)

    def render(self) -> np.ndarray:
        if self._renderer is None:
            model = self.env.model
            model.vis.quality.shadowsize = int(self.shadowsize)
            model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), self.image_size)
            model.vis.global_.offheight = max(int(model.vis.global_.offheight), self.image_size)
            self._renderer = mujoco.Renderer(model, self.image_size, self.image_size)
        self._renderer.update_scene(self.env.data, camera=self._camera)
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = self.reflection
        return self._renderer.render().copy()  # upright: no flip (mujoco-py's img[::-1] is not needed)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.env.close()


class MetaWorldExpert:
    """The scripted v3 policy of a task, acting on the 39-d state observation."""

    def __init__(self, task: str) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        self.policy = ENV_POLICY_MAP[f"{task}-v3"]()

    def act(self, env: MetaWorldEnv) -> np.ndarray:
        return np.clip(np.asarray(self.policy.get_action(env.state().astype(np.float64)), np.float32), -1.0, 1.0)


__all__ = ["HORIZON", "TASKS", "TOP_CAP2", "MetaWorldEnv", "MetaWorldExpert", "env_id", "free_camera_position",
           "top_cap2_camera"]
