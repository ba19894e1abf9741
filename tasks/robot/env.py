"""The simulator interface every CortexBench suite implements (MetaWorld here; DMControl, Adroit in
their own modules). The BC core (`bc.py`, `rollout.py`) only talks to this Protocol, so a suite is
one module: build the env, render the suite's camera, report proprioception and score an episode by
the suite's own rule. No torch here; numpy only in annotations.

Contract (one env = one episode at a time; the rollout steps N of them in lockstep):

- ``reset(seed)``: start an episode whose layout/initial state is a pure function of ``seed``
  (CortexBench: ``base_seed + episode``). Returns nothing; read ``render()`` / ``proprio()``.
- ``render()``: the suite camera at 256x256, (256, 256, 3) uint8, upright (no flip needed).
- ``proprio()``: float32 vector of ``proprio_dim`` (shape (0,) when the suite has none, e.g. DMC).
- ``step(action)``: apply one (clipped) action; returns ``(reward, info)``, ``info`` a dict of
  floats the suite's ``score`` needs (e.g. ``success``). Never called more than ``horizon`` times.
- ``score(episode)``: the suite's per-episode metric from the list of ``(reward, info)`` of one
  full episode (MetaWorld: 100 * success at the last step; Adroit: 100 * (sum goal_achieved > k);
  DMC: return / 10).
- ``horizon``, ``action_dim``, ``proprio_dim``: ints.
- ``state()``: the low-dimensional simulator state (for a test-only oracle encoder and experts).
- ``close()``: free GL / simulator resources (idempotent).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

StepInfo = dict[str, float]
Episode = Sequence[tuple[float, StepInfo]]


@runtime_checkable
class SuiteEnv(Protocol):
    horizon: int
    action_dim: int
    proprio_dim: int

    def reset(self, seed: int) -> None: ...
    def render(self) -> "np.ndarray": ...
    def proprio(self) -> "np.ndarray": ...
    def step(self, action: "np.ndarray") -> tuple[float, StepInfo]: ...
    def score(self, episode: Episode) -> float: ...
    def state(self) -> "np.ndarray": ...
    def close(self) -> None: ...


@runtime_checkable
class Expert(Protocol):
    """A scripted or pretrained demonstrator acting on ``env.state()`` (demos only; never at eval)."""

    def act(self, env: SuiteEnv) -> "np.ndarray": ...


def make_env(suite: str, name: str, **kwargs: Any) -> SuiteEnv:
    """The suite's env by name; suite modules are imported lazily (they import the simulator)."""
    if suite == "metaworld":
        from tasks.robot.metaworld import MetaWorldEnv
        return MetaWorldEnv(name, **kwargs)
    if suite == "dmc":
        from tasks.robot.dmc import make_dmc_env  # type: ignore[import-not-found]
        return make_dmc_env(name, **kwargs)
    if suite == "adroit":
        from tasks.robot.adroit import make_adroit_env  # type: ignore[import-not-found]
        return make_adroit_env(name, **kwargs)
    raise ValueError(f"unknown CortexBench suite {suite!r} (metaworld, dmc, adroit)")


def make_expert(suite: str, name: str, env: SuiteEnv) -> Expert:
    if suite == "metaworld":
        from tasks.robot.metaworld import MetaWorldExpert
        return MetaWorldExpert(name)
    if suite == "dmc":
        from tasks.robot.dmc import make_dmc_expert  # type: ignore[import-not-found]
        return make_dmc_expert(name, env)
    if suite == "adroit":
        from tasks.robot.adroit import make_adroit_expert  # type: ignore[import-not-found]
        return make_adroit_expert(name, env)
    raise ValueError(f"unknown CortexBench suite {suite!r}")


__all__ = ["Episode", "Expert", "StepInfo", "SuiteEnv", "make_env", "make_expert"]
