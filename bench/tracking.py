"""MLflow tracking: one parent run per `bench run`, one child run per (encoder, task).

Every metric's direction is stored as a tag (`bench.dir.<metric>` = higher|lower) so the tidy
results can be read back from the store alone, without downloading artifacts.
"""
from __future__ import annotations

import json
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from bench import __version__
from bench.errors import BenchError
from bench.paths import artifact_root, tracking_uri
from bench.results import DIR_TAG, HOST_TAG, KIND_TAG, PID_TAG, ResultRecord

EXPERIMENT = "spatialboost-bench"
MAX_PARAM = 500
PROC_START_TAG = "bench.proc_start"
ERROR_TAG = "bench.error"  # why a run FAILED or was KILLED


@lru_cache(maxsize=1)
def code_version() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha, dirty = "", ""
    return f"{__version__}+{sha}{'.dirty' if dirty else ''}" if sha else __version__


class StoreDamagedError(BenchError):
    """The local MLflow store exists but cannot be opened (half-migrated, truncated, not a database)."""


def open_client():
    """An MlflowClient on the benchmark's store, created once and atomically when missing; a damaged
    local store is one clear error that says how to recover, never a SQLAlchemy traceback."""
    uri = tracking_uri()
    try:
        client = _client()
        client.search_experiments(max_results=1)
        return client
    except BenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever SQLAlchemy / alembic / MLflow raise for a bad file
        path = _sqlite_path(uri)
        if path is None or not path.exists():
            raise
        cause = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise StoreDamagedError(
            f"the MLflow store {path} cannot be opened ({type(exc).__name__}: {cause}). It is damaged or "
            f"half-migrated (e.g. by an older version killed during its first set-up). Move it aside and run "
            f"again: `mv {path} {path}.broken` (results in it are then not shown; `mlflow db upgrade "
            f"sqlite:///{path}.broken` may repair a half-migrated one).") from None


def _client():
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no store-migration chatter on every command
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    init_store(uri)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def init_store(uri: str | None = None) -> None:
    """Create a local SQLite store once, atomically: the schema is migrated in a file beside the store
    and renamed into place under a lock, so concurrent first runs never see (or leave, when killed)
    a half-migrated database."""
    path = _sqlite_path(uri or tracking_uri())
    if path is None or path.exists():
        return
    import fcntl
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return
        tmp = path.with_name(f".{path.name}.init-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = SqlAlchemyStore(f"sqlite:///{tmp}", artifact_root())
        store.engine.dispose()
        os.replace(tmp, path)


# MLflow's UI opens an experiment on the view its kind names: ours holds training/evaluation runs.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def _experiment_id(client) -> str:
    """Create-then-reread: two processes creating the experiment at once both end with its id."""
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        local = tracking_uri().startswith("sqlite:") or tracking_uri().startswith("file:")
        try:
            return client.create_experiment(EXPERIMENT, artifact_location=artifact_root() if local else None,
                                            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except Exception:  # noqa: BLE001 - lost the race (or a transient lock): the winner's experiment is there
            exp = client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                raise
    if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id


def _params(params: dict[str, Any]) -> dict[str, str]:
    return {k: str(v)[:MAX_PARAM] for k, v in params.items() if v is not None}


@dataclass
class RunHandle:
    client: Any
    run_id: str

    def log_params(self, **params: Any) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        fresh = [Param(k, v) for k, v in _params(params).items() if k not in existing]
        if fresh:
            self.client.log_batch(self.run_id, params=fresh)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric as MlMetric

        ts = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[MlMetric(k, float(v), ts, step or 0) for k, v in metrics.items()])

    def set_tags(self, **tags: Any) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_json(self, name: str, obj: Any, folder: str | None = None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
            self.client.log_artifact(self.run_id, str(path), folder)

    def log_text(self, name: str, text: str, folder: str | None = None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_text(text)
            self.client.log_artifact(self.run_id, str(path), folder)

    def log_file(self, path: str | Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)


def process_start(pid: int) -> str:
    """The kernel's start time of a process (clock ticks since boot): with the pid it names one
    process, so a reused pid is not mistaken for the one that started a run. "" when unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_alive(pid: int, start: str) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not start or process_start(pid) in ("", start)


class Tracker:
    def __init__(self) -> None:
        self.client = open_client()
        self.experiment_id = _experiment_id(self.client)

    def reap_dead_runs(self) -> list[str]:
        """Runs left RUNNING by a process of this host that no longer exists (kill -9, power loss)
        are marked KILLED, so the store never shows a result in progress that nobody computes."""
        import socket

        host, dead, token = socket.gethostname(), [], None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string="attributes.status = 'RUNNING'",
                                           max_results=1000, page_token=token)
            for run in page:
                tags = run.data.tags
                if tags.get(HOST_TAG) != host or not tags.get(PID_TAG, "").isdigit():
                    continue
                if not process_alive(int(tags[PID_TAG]), tags.get(PROC_START_TAG, "")):
                    self.client.set_terminated(run.info.run_id, "KILLED")
                    self.client.set_tag(run.info.run_id, ERROR_TAG, "its process died (found by a later start)")
                    dead.append(run.info.run_id)
            token = page.token
            if not token:
                return dead

    @contextmanager
    def run(self, name: str, *, parent: RunHandle | None = None, tags: dict[str, Any] | None = None,
            params: dict[str, Any] | None = None) -> Iterator[RunHandle]:
        """A run that ends FINISHED, FAILED, or KILLED (Ctrl-C / SIGTERM); host and pid are recorded
        so a later start can tell runs of dead processes from live ones."""
        import os
        import socket

        all_tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()),
                    PROC_START_TAG: process_start(os.getpid()),
                    **{k: str(v) for k, v in (tags or {}).items()}}
        if parent is not None:
            all_tags["mlflow.parentRunId"] = parent.run_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        handle = RunHandle(self.client, run.info.run_id)
        if params:
            handle.log_params(**params)
        try:
            yield handle
        except BaseException as exc:
            interrupted = isinstance(exc, (KeyboardInterrupt, SystemExit))
            self.client.set_tag(handle.run_id, ERROR_TAG, (f"{type(exc).__name__}: {exc}" if not interrupted
                                                           else "interrupted")[:MAX_PARAM])
            self.client.set_terminated(handle.run_id, "KILLED" if interrupted else "FAILED")
            raise
        self.client.set_terminated(handle.run_id, "FINISHED")

    @staticmethod
    def record(handle: RunHandle, record: ResultRecord) -> None:
        """Store a result so `bench.store` rebuilds it from tags, params and metrics alone."""
        handle.set_tags(**record.tags())
        handle.log_metrics({k: m.value for k, m in record.metrics.items()})
        handle.log_json("result.json", record.to_dict())
        if record.breakdown:
            handle.log_json("breakdown.json", record.breakdown)
