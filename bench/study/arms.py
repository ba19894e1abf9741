"""Names and places of the study's arms (shared by the runner and the report)."""
from __future__ import annotations

from pathlib import Path

import yaml

from bench.paths import bench_home

CONFIG = Path(__file__).with_name("mini.yaml")


def load_config(path: Path | None = None) -> dict:
    cfg = yaml.safe_load((path or CONFIG).read_text())
    if len(cfg["seeds"]) < 3:
        raise ValueError("the study needs at least 3 seeds")
    return cfg


def arm_name(cfg: dict, arm: str) -> str:
    if arm == "base":
        return cfg["base"]
    tag = cfg["arms"][arm]
    return f"{cfg['base']}+sb" + (f"-{tag}" if tag else "")


def study_dir(cfg: dict) -> Path:
    return bench_home() / "study" / cfg["name"]


def checkpoint(cfg: dict, arm: str, seed: int) -> Path:
    return study_dir(cfg) / f"s{seed}" / arm / "boosted.safetensors"


__all__ = ["CONFIG", "arm_name", "checkpoint", "load_config", "study_dir"]
