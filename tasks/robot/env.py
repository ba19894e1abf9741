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

Suites are looked up by name in `tasks/robot/suites.py` (`make_env(suite, name, ...)`,
`make_expert(suite, name, env)`); a suite module may import this file (types only), never `suites`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

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


__all__ = ["Episode", "Expert", "StepInfo", "SuiteEnv"]
