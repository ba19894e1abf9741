"""The exported DMC SAC actor (tasks/robot/sac.py writes it) as a numpy demonstrator: no torch or
stable-baselines3 needed to record demos from it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


class SACExpert:
    """The exported SAC actor in numpy: h = relu(W h + b) per hidden layer, a = tanh(W_mu h + b_mu)
    (SB3's deterministic action on a [-1, 1] action space)."""

    def __init__(self, path: Path) -> None:
        from safetensors import safe_open
        from safetensors.numpy import load_file

        self.path = Path(path)
        t = load_file(str(self.path))
        n = len(t) // 2
        self.layers = [(t[f"fc{i}.weight"].astype(np.float64), t[f"fc{i}.bias"].astype(np.float64)) for i in range(n)]
        with safe_open(str(self.path), framework="numpy") as f:
            self.meta = json.loads((f.metadata() or {}).get("json", "{}"))

    def __call__(self, state: np.ndarray) -> np.ndarray:
        h = np.asarray(state, dtype=np.float64)
        for w, b in self.layers[:-1]:
            h = np.maximum(h @ w.T + b, 0.0)
        w, b = self.layers[-1]
        return np.tanh(h @ w.T + b).astype(np.float32)

    def act(self, env: Any) -> np.ndarray:
        return self(env.state())


__all__ = ["SACExpert"]
