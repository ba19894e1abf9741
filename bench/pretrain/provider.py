"""The runner's view of a self-pretrained encoder: where its weights are cached, and the pretraining
step a plan runs when they are missing (`bench.encoders.variants.SelfPretrainer`).

Import-light (no torch): planners call it. `prerequisite` answers from the file's metadata alone.
"""
from __future__ import annotations

import json
from pathlib import Path

from bench.encoders.variants import Prerequisite
from bench.errors import NotTrainedError
from bench.pretrain.recipe import LABEL, LOG_FILE, MEASURED_SECONDS, OBJECTIVES, RECIPES, output_dir, weights_path


def command(name: str) -> str:
    return f"bench pretrain {name}"


def _current(name: str) -> bool:
    """The cached weights exist and were made by the current recipe (the data hash is checked by the
    pretraining itself, which returns at once when it matches)."""
    path = weights_path(name)
    if not path.is_file():
        return False
    try:
        from safetensors import safe_open

        with safe_open(str(path), "np") as f:
            meta = f.metadata() or {}
    except Exception:  # noqa: BLE001 - unreadable: retrain
        return False
    return meta.get("recipe_hash") == RECIPES[name].hash()


def estimate_seconds(name: str) -> float:
    """The wall time the last pretraining of this recipe recorded, else the measured default."""
    try:
        log = json.loads((output_dir(name) / LOG_FILE).read_text())
        if log.get("recipe_hash") == RECIPES[name].hash():
            return float(log["seconds"])
    except (OSError, ValueError, KeyError):
        pass
    return MEASURED_SECONDS.get(name, 300.0)


class SyntheticPretrainer:
    def weights_file(self, name: str) -> Path:
        path = weights_path(name)
        if not _current(name):
            why = "no weights" if not path.is_file() else "weights of an older recipe"
            raise NotTrainedError(f"{name} ({LABEL}) is not pretrained yet: {why} at {path}. Pretrain it with "
                                  f"`{command(name)}` (a few minutes on 2 CPU cores; `bench run` does it as a "
                                  f"plan step), or pass --weights FILE.")
        return path

    def prerequisite(self, name: str, weights: str | Path | None = None, *,
                     progress: bool = True) -> Prerequisite | None:
        if weights is not None or _current(name):
            return None
        recipe = RECIPES[name]

        def run() -> None:
            from bench.pretrain.trainer import pretrain

            pretrain(recipe, progress=progress)
            self.weights_file(name)

        detail = (f"{OBJECTIVES.get(recipe.objective, recipe.objective)}, {recipe.steps} steps on the synthetic "
                  f"'{recipe.synth_preset}' training images -> {weights_path(name)}")
        return Prerequisite(name, f"pretrain {name} ({LABEL})", detail, estimate_seconds(name), ready=True,
                            run=run)


PROVIDER = SyntheticPretrainer()

__all__ = ["PROVIDER", "SyntheticPretrainer", "command", "estimate_seconds"]
