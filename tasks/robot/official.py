"""The official CortexBench demo pickles (eai-vc `train_loop.py`: `data_dir/<env_name>.pickle`, a list
of path dicts; the loop keeps `demo_paths[:num_demos]`), read through the project's restricted
unpickler (`bench.data.retrieval.restricted_load`: plain containers, numbers, strings and numpy
arrays only; any other global, e.g. a `__reduce__` calling `os.system`, is refused naming the file and
the class). Each path becomes our demo dict: `frames` <- `images` (T, H, W, 3) uint8, `actions`
<- `actions` (T, A), `proprio` <- `env_infos[<suite key>]` (MetaWorld `gripper_proprio`, Adroit
`proprio`, DMC none). Every shape is checked against the suite env; any mismatch is a `DataError`."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.errors import DataError
from tasks.robot.sources import find_pickle

PROPRIO_KEYS = {"metaworld": "gripper_proprio", "adroit": "proprio", "dmc": None}


def _array(path: Path, i: int, name: str, value, ndim: int) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.ndim != ndim:
        got = f"{type(value).__name__} {getattr(value, 'shape', '')}".strip()
        raise DataError(path, f"demo {i}: '{name}' must be a {ndim}-d numpy array, got {got}")
    return value


def load_official_demos(path: Path, suite: str, n: int, action_dim: int, proprio_dim: int) -> list[dict[str, np.ndarray]]:
    """The first `n` demos of an official pickle as demo dicts (frames, proprio, actions)."""
    from bench.data.retrieval import restricted_load

    paths = restricted_load(path)
    if not isinstance(paths, list) or not all(isinstance(p, dict) for p in paths):
        raise DataError(path, f"expected a list of path dicts (eai-vc layout), got {type(paths).__name__}")
    if len(paths) < n:
        raise DataError(path, f"holds {len(paths)} demos, the protocol needs {n} (lower `demos` with --set)")
    key = PROPRIO_KEYS[suite]
    out = []
    for i, p in enumerate(paths[:n]):
        missing = [k for k in ("images", "actions") if k not in p]
        if missing:
            raise DataError(path, f"demo {i}: missing key(s) {missing} (has {sorted(p)})")
        images = _array(path, i, "images", p["images"], 4)
        actions = _array(path, i, "actions", p["actions"], 2).astype(np.float32)
        if images.dtype != np.uint8 or images.shape[-1] != 3:
            raise DataError(path, f"demo {i}: 'images' must be (T, H, W, 3) uint8, got {images.dtype} {images.shape}")
        if len(actions) != len(images) or actions.shape[1] != action_dim:
            raise DataError(path, f"demo {i}: {len(images)} images and actions {actions.shape}; expected (T, {action_dim})")
        if key is None:
            proprio = np.zeros((len(images), 0), np.float32)
        else:
            infos = p.get("env_infos")
            if not isinstance(infos, dict) or key not in infos:
                raise DataError(path, f"demo {i}: env_infos['{key}'] (the {suite} proprioception) is missing")
            proprio = _array(path, i, f"env_infos['{key}']", infos[key], 2).astype(np.float32)
            if proprio.shape != (len(images), proprio_dim):
                raise DataError(path, f"demo {i}: env_infos['{key}'] is {proprio.shape}, expected ({len(images)}, {proprio_dim})")
        out.append({"frames": images, "proprio": proprio, "actions": actions})
    return out


__all__ = ["PROPRIO_KEYS", "find_pickle", "load_official_demos"]
