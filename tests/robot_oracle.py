"""Test-only state oracle for the CortexBench BC tasks (tests/test_robot*.py): the "embedding" is the simulator
state, so a BC run needs no renders and no encoder, and learning can be shown through the real loop."""
from __future__ import annotations

import numpy as np


class StateOracleBC:
    """Mixed in before a task class: observations are `env.state()`, demos' `states`, embedded as is."""

    needs_pixels = False

    def embedding_name(self, ctx):
        return "oracle-state"

    def observe(self, env):
        return env.state()

    def demo_observations(self, demo):
        return demo["states"]

    def embed_observations(self, ctx, obs):
        return np.asarray(obs, dtype=np.float32)


def oracle_task(name: str):
    """The registered task `name` (its own class: CortexBenchBC, TriFingerBC, ...) with the state oracle."""
    from tasks import get_task

    base = get_task(name)
    cls = type(f"Oracle{type(base).__name__}", (StateOracleBC, type(base)), {})
    return cls(base.meta, **base.options)


def oracle_ctx(tmp_path, encoder):
    import torch

    from bench.context import EvalContext
    from bench.features import FeatureCache

    return EvalContext(encoder, torch.device("cpu"), 0, FeatureCache(tmp_path / "cache" / "features"),
                       state_root=tmp_path / "state")
