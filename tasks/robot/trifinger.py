"""CortexBench TriFinger (eai-vc `cortexbench/trifinger_vc`) on PyPI trifinger-simulation 2.0.0 (PyBullet).

One `TriFingerEnv` = one episode at a time, implementing `tasks.robot.env.SuiteEnv`:

- robot: `SimFinger("trifingeredu")` (edu/trifingeredu.urdf). eai-vc used its fork's `trifinger_meta`
  (= edu/trifingernyu.urdf), absent from the PyPI package; the EDU model is the closest one shipped
  (eai-vc treats trifinger_meta as EDU: same fingertip radius 0.007 and finger base angles 90/350/220).
  Initial joints `Q_NOMINAL` (CubeReachEnv's q_nominal). Sim step 0.004 s; a policy step is 0.4 s =
  100 sim steps; horizon 5 policy steps (reach, 500 sim steps).
- cube: the colored "cube v2" (6.5 cm), fixed in place for reach (`fix_cube_base`: base mass 0),
  position from `move_cube.sample_goal(difficulty=1)` with a RandomState(seed) (eai-vc "diff 110":
  difficulty 1, random initial cube), orientation identity. `reset(seed)` is a pure function of seed.
- action: fingertip-position deltas in cm (finger 0 only for reach: 3-d), clipped to +-max_a (5 cm),
  added to the desired-fingertip plan and tracked over the 100 sim steps by eai-vc's impedance
  controller (linear interpolation of the plan, kp 300, kv 5, error capped at 1 cm, gravity
  compensation by pinocchio RNEA), torques clipped to the platform limits.
- observation: `camera60` of `camera.TriFingerCameras` (the package's simple camera model: eai-vc's
  `camera_view="default"`), 270x270, FOV 52, TinyRenderer (PyBullet DIRECT), no shadows; proprio =
  `ft_pos_cur`, the 9 fingertip coordinates in cm.
- score: 100 x `scaled_success` after the last step: reach = 1 - min(1, max(|ft0 - cube| - h, 0) /
  (|ft0(0) - cube| - h)), h = half the cube width (eai-vc `get_reach_scaled_err`).
- state(): [ft_pos (cm, 9), cube position (cm, 3)] (test oracles and the scripted expert).

Expert: `ReachExpert`, eai-vc's scripted ReachCubePolicy path (1.5 s linear to 2 cm outside the
contact point of finger 0's assigned cube face, then 0.5 s onto it), sampled at the policy's 0.4 s
steps so its actions are exactly what the BC policy must output. Move-cube: not ported (sources.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tasks.robot.env import Episode, StepInfo

SIM_DT = 0.004
SIM_STEPS_PER_ACTION = 100  # downsample_time_step 0.4 s
FINGER_TYPE = "trifingeredu"  # eai-vc: trifinger_meta (fork only); see the module docstring
Q_NOMINAL = np.array([-0.08, 1.15, -1.5] * 3)
CUBE_HALF = 0.065 / 2
FT_RADIUS = 0.007  # eai-vc finger_utils.get_ft_radius for EDU / trifinger_meta
FINGER_BASE_DEG = (90.0, 350.0, 220.0)  # finger_utils.get_finger_base_positions (EDU / trifinger_meta)
IMAGE_SIZE = 270
# camera60 of trifinger_simulation.camera.TriFingerCameras (pinned by the camera test)
CAMERA60 = dict(position=(0.2496, 0.2458, 0.4190), orientation=(0.3760, 0.8690, -0.2918, -0.1354), fov=52)


@dataclass(frozen=True)
class TriFingerSpec:
    key: str
    horizon: int  # policy steps (0.4 s each)
    fingers: int  # fingers the policy moves (action = 3 x fingers)
    max_a: float  # cm per step


SPECS = {"reach-cube": TriFingerSpec("reach-cube", 5, 1, 5.0),
         "move-cube": TriFingerSpec("move-cube", 10, 3, 8.0)}
PORTED = ("reach-cube",)


def canonical_name(name: str) -> str:
    n = name.strip().lower().removeprefix("cortexbench-trifinger-").replace("_", "-")
    if n not in SPECS:
        import difflib

        near = difflib.get_close_matches(n, SPECS, n=2, cutoff=0.4)
        raise ValueError(f"unknown TriFinger task {name!r} ({', '.join(SPECS)})"
                         + (f"; did you mean {', '.join(near)}?" if near else ""))
    return n


def reach_scaled_success(ft0: np.ndarray, ft0_start: np.ndarray, cube: np.ndarray, half: float = CUBE_HALF) -> float:
    """eai-vc `get_reach_scaled_err` for finger 0, as success = 1 - err (positions in any one unit)."""
    cur = max(float(np.linalg.norm(ft0 - cube)) - half, 0.0)
    init = float(np.linalg.norm(ft0_start - cube)) - half
    if init <= 0:
        init = float(np.linalg.norm(ft0_start - cube))
    return max(0.0, 1.0 - min(1.0, cur / init))


def score_episode(episode: Episode) -> float:
    """100 x scaled_success after the last policy step."""
    return 100.0 * float(episode[-1][1]["scaled_success"]) if episode else 0.0


class TriFingerEnv:
    """A CortexBench TriFinger task as a `SuiteEnv` (conventions in the module docstring)."""

    def __init__(self, name: str, *, image_size: int = IMAGE_SIZE, render: bool = True, **_ignored: Any) -> None:
        key = canonical_name(name)
        if key not in PORTED:
            raise NotImplementedError(f"TriFinger {key}: no scripted expert is ported (docs/robot.md)")
        try:
            import pybullet
            from trifinger_simulation import SimFinger, camera, collision_objects, trifingerpro_limits
        except ImportError as e:  # pragma: no cover - depends on the install
            from tasks.robot.sources import TRIFINGER_INSTALL

            raise ImportError(f"the TriFinger suite needs trifinger-simulation: {TRIFINGER_INSTALL}") from e
        import pinocchio

        self._pb, self._pin = pybullet, pinocchio
        self.spec = SPECS[key]
        self.name = key
        self.horizon = self.spec.horizon
        self.action_dim = 3 * self.spec.fingers
        self.proprio_dim = 9
        self.size = int(image_size)
        self._want_render = bool(render)
        self.finger = SimFinger(finger_type=FINGER_TYPE, time_step=SIM_DT, enable_visualization=False)
        self._client = self.finger._pybullet_client_id
        self.cube = collision_objects.ColoredCubeV2(position=(0, 0, CUBE_HALF), pybullet_client_id=self._client)
        self._pb.changeDynamics(self.cube._object_id, -1, mass=0.0, physicsClientId=self._client)  # fix_cube_base
        self._camera = camera.TriFingerCameras(pybullet_client_id=self._client, image_size=(self.size, self.size)).cameras[0] \
            if render else None
        self._torque_lo, self._torque_hi = trifingerpro_limits.robot_torque.low, trifingerpro_limits.robot_torque.high
        self._model = pinocchio.buildModelFromUrdf(self.finger.finger_urdf_path)
        self._data = self._model.createData()
        self._tips = [self._model.getFrameId(n) for n in self.finger.tip_link_names]
        self._q: np.ndarray | None = None
        self._dq = np.zeros(9)
        self._t = 0

    # ---- kinematics / control (eai-vc HandKinematics + ImpedanceController) ----------------------
    def ft_pos(self, q: np.ndarray) -> np.ndarray:
        """Fingertip positions (9,) in metres."""
        self._pin.framesForwardKinematics(self._model, self._data, q)
        return np.concatenate([np.asarray(self._data.oMf[i].translation).ravel() for i in self._tips])

    def _torque(self, x_des: np.ndarray, dx_des: np.ndarray, q: np.ndarray, dq: np.ndarray) -> np.ndarray:
        pin, m, d = self._pin, self._model, self._data
        pin.computeJointJacobians(m, d, q)
        pin.framesForwardKinematics(m, d, q)
        jac = np.concatenate([pin.getFrameJacobian(m, d, i, pin.ReferenceFrame.LOCAL_WORLD_ALIGNED)[:3] for i in self._tips])
        x = np.concatenate([np.asarray(d.oMf[i].translation).ravel() for i in self._tips])
        dx_err = (x_des - x).reshape(3, 3)
        norms = np.linalg.norm(dx_err, axis=1, keepdims=True)
        dx_err = np.where(norms > 0.01, dx_err / np.maximum(norms, 1e-12) * 0.01, dx_err).ravel()  # max_x_err 1 cm
        force = 5.0 * (dx_des - jac @ dq) + 300.0 * dx_err  # kv 5, kp 300
        gravity = pin.rnea(m, d, q, np.zeros(m.nv), np.zeros(m.nv))
        return np.clip(jac.T @ force + gravity, self._torque_lo, self._torque_hi)

    # ---- SuiteEnv -----------------------------------------------------------------------------------
    def reset(self, seed: int) -> None:
        from trifinger_simulation.tasks import move_cube

        saved = move_cube.random
        move_cube.random = np.random.RandomState(int(seed))
        try:
            pose = move_cube.sample_goal(difficulty=1)  # random xy on the table, identity orientation
        finally:
            move_cube.random = saved
        self.cube.set_state(pose.position, pose.orientation)
        self.cube_pos = np.asarray(pose.position, dtype=np.float64)
        obs = self.finger.reset_finger_positions_and_velocities(Q_NOMINAL)
        self._q, self._dq = np.asarray(obs.position, np.float64), np.asarray(obs.velocity, np.float64)
        self.start_ft = self.ft_pos(self._q)
        self.plan = self.start_ft.copy()  # x_des_plan
        self._t = 0

    def render(self) -> np.ndarray:
        if self._camera is None:
            raise RuntimeError(f"{self!r} was built with render=False")
        return np.ascontiguousarray(self._camera.get_image(renderer=self._pb.ER_TINY_RENDERER), dtype=np.uint8)

    def proprio(self) -> np.ndarray:
        return (100.0 * self.ft_pos(self._require_q())).astype(np.float32)

    def step(self, action: np.ndarray) -> tuple[float, StepInfo]:
        q = self._require_q()
        if self._t >= self.horizon:
            raise RuntimeError(f"trifinger-{self.name}: step past the horizon ({self.horizon})")
        a = np.clip(np.asarray(action, np.float64).reshape(self.action_dim), -self.spec.max_a, self.spec.max_a) / 100.0
        delta = np.zeros(9)
        delta[: self.action_dim] = a
        dq = self._dq
        velocity = delta / (SIM_STEPS_PER_ACTION * SIM_DT)
        for i in range(SIM_STEPS_PER_ACTION):
            torque = self._torque(self.plan + (i + 1) * delta / SIM_STEPS_PER_ACTION, velocity, q, dq)
            t = self.finger.append_desired_action(self.finger.Action(torque=torque))
            obs = self.finger.get_observation(t + 1)  # the state after this sim step
            q, dq = np.asarray(obs.position, np.float64), np.asarray(obs.velocity, np.float64)
        self._q, self._dq = q, dq
        self.plan = self.plan + delta
        self._t += 1
        success = reach_scaled_success(self.ft_pos(self._q)[:3], self.start_ft[:3], self.cube_pos)
        return -float(np.linalg.norm(self.ft_pos(self._q)[:3] - self.cube_pos)), {"scaled_success": success}

    def score(self, episode: Episode) -> float:
        return score_episode(episode)

    def state(self) -> np.ndarray:
        return np.concatenate([100.0 * self.ft_pos(self._require_q()), 100.0 * self.cube_pos]).astype(np.float32)

    def close(self) -> None:
        finger, self.finger = getattr(self, "finger", None), None
        if finger is not None:
            finger._disconnect_from_pybullet()

    # ---- helpers ------------------------------------------------------------------------------------
    @property
    def t(self) -> int:
        return self._t

    def _require_q(self) -> np.ndarray:
        if self._q is None:
            raise RuntimeError("call reset(seed) first")
        return self._q

    def __repr__(self) -> str:
        return f"TriFingerEnv({self.name}, {FINGER_TYPE}, horizon={self.horizon}, camera60 {self.size}px)"


# ---- the scripted reach expert (eai-vc gen_demos/reach_cube_policy.py + control/cube_utils.py) -------
def finger0_contact_face(cube_pos: np.ndarray) -> np.ndarray:
    """Outward normal (cube frame = world frame: identity orientation, face 6 on the ground) of the face
    eai-vc's greedy `get_cp_params` assigns to finger 0 (the finger farthest from a cube axis first)."""
    faces = {1: (0, -1, 0), 2: (0, 1, 0), 3: (1, 0, 0), 5: (-1, 0, 0)}
    adjacent = [1, 2, 3, 5]  # OBJ_FACES_INFO[6]["adjacent_faces"]
    r = 0.15
    bases = [np.array([np.cos(np.deg2rad(t)) * r, np.sin(np.deg2rad(t)) * r, 0.0]) - cube_pos for t in FINGER_BASE_DEG]
    dist = np.array([[abs(b[1]), abs(b[0])] for b in bases])  # distance to the x axis, to the y axis
    free = list(adjacent)
    assigned: dict[int, int] = {}
    for _ in range(3):
        finger, axis = np.unravel_index(int(np.argmax(dist)), dist.shape)
        b = bases[finger]

        def pick(ax: int) -> int:
            return (adjacent[1] if b[1] > 0 else adjacent[0]) if ax == 0 else (adjacent[2] if b[0] > 0 else adjacent[3])

        face = pick(int(axis))
        if face not in free:
            face = pick(1 - int(axis))
        if face not in free:
            face = free[0]
        assigned[int(finger)] = face
        dist[finger, :] = -np.inf
        free.remove(face)
    return np.asarray(faces[assigned[0]], dtype=np.float64)


class ReachExpert:
    """eai-vc's ReachCubePolicy path for finger 0 (others hold their start): linear over 1.5 s to the
    contact point at half size + 2 cm (+ fingertip radius), then over 0.5 s onto half size + radius.
    Acts at the 0.4 s policy steps: action = plan(t + 0.4 s) - current plan, in cm."""

    def act(self, env: TriFingerEnv) -> np.ndarray:
        normal = finger0_contact_face(env.cube_pos)
        pre = env.cube_pos + normal * (CUBE_HALF + 0.02 + FT_RADIUS)
        touch = env.cube_pos + normal * (CUBE_HALF + FT_RADIUS)
        t = (env.t + 1) * SIM_STEPS_PER_ACTION * SIM_DT  # seconds at the end of this step
        start = env.start_ft[:3]
        target = start + (pre - start) * min(t / 1.5, 1.0) if t <= 1.5 else pre + (touch - pre) * min((t - 1.5) / 0.5, 1.0)
        return (100.0 * (target - env.plan[:3])).astype(np.float32)


def make_trifinger_env(name: str, **kwargs: Any) -> TriFingerEnv:
    kwargs.pop("shadowsize", None)  # MuJoCo knobs; PyBullet's TinyRenderer has no shadow map here
    return TriFingerEnv(name, **kwargs)


def make_trifinger_expert(name: str, env: Any = None) -> ReachExpert:
    if canonical_name(name) not in PORTED:
        raise NotImplementedError(f"TriFinger {name}: no scripted expert is ported (docs/robot.md)")
    return ReachExpert()


__all__ = ["CAMERA60", "FINGER_TYPE", "PORTED", "Q_NOMINAL", "ReachExpert", "SPECS", "TriFingerEnv",
           "canonical_name", "finger0_contact_face", "make_trifinger_env", "make_trifinger_expert",
           "reach_scaled_success", "score_episode"]
