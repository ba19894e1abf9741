"""Where the benchmark keeps its state. Everything lives under one work directory (BENCH_HOME)."""
from __future__ import annotations

import os
from pathlib import Path


def bench_home() -> Path:
    return Path(os.environ.get("BENCH_HOME", ".bench")).resolve()


def data_root() -> Path:
    """Root of the datasets; each real dataset may also be pointed to by its own variable."""
    return Path(os.environ.get("BENCH_DATA", bench_home() / "data")).resolve()


def cache_root() -> Path:
    return bench_home() / "cache"


def checkpoints_root() -> Path:
    return bench_home() / "checkpoints"


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` wins; the default is a local SQLite store inside BENCH_HOME."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    home = bench_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'mlflow.db'}"


def artifact_root() -> str:
    return (bench_home() / "mlartifacts").as_uri()
