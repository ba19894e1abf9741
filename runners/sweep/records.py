"""Results from many writers without SQLite on a shared file system: a sweep job (no tracking
server) writes each run as a folder of files -- params, metrics, tags, artifacts (result.json,
items.npz, ...), then a FINISHED marker, each write atomic -- beside its log; the driver, the one
MLflow writer, ingests finished runs into the store (one run per identity: an identity the store
has already is marked and skipped). With MLFLOW_TRACKING_URI at a server, jobs log directly instead.
"""
from __future__ import annotations

import json
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from bench.io import atomic_path, write_json
from bench.results import ResultRecord

FINISHED = "FINISHED"
INGESTED = "ingested.json"


class _Client:
    """The slice of MlflowClient the executor calls on a run (`log_artifacts`)."""

    def __init__(self, root: Path):
        self.root = root

    def log_artifacts(self, run_id: str, local_dir: str) -> None:
        shutil.copytree(local_dir, self.root / run_id / "artifacts", dirs_exist_ok=True)


HISTORY = "metric_history.jsonl"  # every log_metrics call (curves with their steps), replayed on ingest


class FileRunHandle:
    """A run as files. `record_root` tells a task's own process (runners/child.py) to log into the
    same folder, so its curves, params and files reach MLflow through the driver like the parent's."""

    def __init__(self, root: Path, run_id: str):
        self.root, self.run_id, self.client = Path(root), run_id, _Client(Path(root))
        self.dir = self.root / run_id
        self.record_root = str(self.root)

    def _merge(self, name: str, values: dict[str, Any]) -> None:
        path = self.dir / name
        old = json.loads(path.read_text()) if path.exists() else {}
        write_json(path, {**old, **values})

    def log_params(self, **params: Any) -> None:
        self._merge("params.json", {k: str(v) for k, v in params.items() if v is not None})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        values = {k: float(v) for k, v in metrics.items()}
        ts = int(time.time() * 1000)
        with open(self.dir / HISTORY, "a", encoding="utf-8") as f:  # one line per call: a kill loses no earlier step
            f.write("".join(json.dumps({"key": k, "value": v, "step": int(step or 0), "timestamp": ts}) + "\n"
                            for k, v in values.items()))
        self._merge("metrics.json", values)

    def set_tags(self, **tags: Any) -> None:
        self._merge("tags.json", {k: str(v) for k, v in tags.items()})

    def _artifact(self, name: str, folder: str | None) -> Path:
        path = self.dir / "artifacts" / (folder or "") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def log_json(self, name: str, obj: Any, folder: str | None = None) -> None:
        with atomic_path(self._artifact(name, folder)) as tmp:
            tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))

    def log_text(self, name: str, text: str, folder: str | None = None) -> None:
        with atomic_path(self._artifact(name, folder)) as tmp:
            tmp.write_text(text)

    def log_file(self, path: str | Path, folder: str | None = None) -> None:
        shutil.copy2(path, self._artifact(Path(path).name, folder))


class FileTracker:
    """`bench.tracking.Tracker`'s interface over a folder (one sub-folder per run)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def reap_dead_runs(self) -> list[str]:
        return []  # a killed run has no FINISHED marker: it is simply not ingested

    @contextmanager
    def run(self, name: str, *, parent=None, tags: dict[str, Any] | None = None,
            params: dict[str, Any] | None = None) -> Iterator[FileRunHandle]:
        handle = FileRunHandle(self.root, uuid.uuid4().hex)
        handle.dir.mkdir(parents=True)
        handle.set_tags(**{"mlflow.runName": name, **(tags or {})})
        if params:
            handle.log_params(**params)
        try:
            yield handle
        except BaseException as exc:
            write_json(handle.dir / "status.json", {"status": "FAILED", "error": f"{type(exc).__name__}: {exc}"})
            raise
        write_json(handle.dir / "status.json", {"status": FINISHED})


def finished_runs(sweep: Path) -> Iterator[Path]:
    """Run folders of every job of a sweep that finished with a record."""
    for status in sorted((sweep / "jobs").glob("*/records/*/status.json")):
        run = status.parent
        if json.loads(status.read_text()).get("status") == FINISHED and (run / "artifacts" / "result.json").exists():
            yield run


def read_record(run: Path) -> ResultRecord:
    return ResultRecord.from_dict(json.loads((run / "artifacts" / "result.json").read_text()))


def file_records(sweep: Path) -> dict[str, ResultRecord]:
    """identity hash -> record of every finished run of the sweep (what jobs must not redo)."""
    return {(r := read_record(run)).identity_hash: r for run in finished_runs(sweep)}


def ingest(sweep: Path, out=None) -> tuple[int, int]:
    """Record the sweep's finished runs into MLflow (the driver is the one writer): (new, duplicates)."""
    from bench.store import read_records
    from bench.tracking import Tracker

    pending = [run for run in finished_runs(sweep) if not (run / INGESTED).exists()]
    if not pending:
        return 0, 0
    tracker = Tracker()
    stored = {r.identity_hash for r in read_records(kinds=("task",))}
    new = dup = 0
    parent_id = _sweep_parent(tracker, sweep)
    from bench.tracking import RunHandle

    parent = RunHandle(tracker.client, parent_id)
    for run in pending:
        record = read_record(run)
        if record.identity_hash in stored:
            write_json(run / INGESTED, {"duplicate_of_identity": record.identity_hash})
            dup += 1
            continue
        params = json.loads((run / "params.json").read_text()) if (run / "params.json").exists() else {}
        tags = json.loads((run / "tags.json").read_text()) if (run / "tags.json").exists() else {}
        tags.pop("mlflow.runName", None)
        with tracker.run(f"{record.encoder}/{record.task}", parent=parent, tags=tags, params=params) as handle:
            record.run_id, record.parent_run_id = handle.run_id, parent_id
            artifacts = run / "artifacts"
            for item in artifacts.iterdir():
                if item.name not in ("result.json", "breakdown.json"):
                    (handle.client.log_artifacts(handle.run_id, str(item), item.name) if item.is_dir()
                     else handle.client.log_artifact(handle.run_id, str(item)))
            Tracker.record(handle, record)
            replay_metrics(handle, run, set(record.metrics))
        write_json(run / INGESTED, {"run_id": record.run_id})
        stored.add(record.identity_hash)
        new += 1
        if out is not None:
            print(f"[sweep] recorded {record.encoder_label or record.encoder} / {record.task} seed {record.seed} "
                  f"(run {record.run_id[:8]})", file=out, flush=True)
    return new, dup


def replay_metrics(handle, run: Path, skip: set[str]) -> int:
    """Log a run folder's metric history into MLflow with its steps and times (curves per epoch from
    the task or its own process); results (`skip`) are the record's. Returns the points logged."""
    from mlflow.entities import Metric as MlMetric

    points: list[MlMetric] = []
    history = run / HISTORY
    if history.exists():
        for line in history.read_text(encoding="utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                if d["key"] not in skip:
                    points.append(MlMetric(d["key"], float(d["value"]), int(d["timestamp"]), int(d["step"])))
    elif (run / "metrics.json").exists():  # a folder written before the history existed: last values only
        ts = int(time.time() * 1000)
        points = [MlMetric(k, float(v), ts, 0) for k, v in json.loads((run / "metrics.json").read_text()).items()
                  if k not in skip]
    for i in range(0, len(points), 1000):  # MLflow's log_batch limit
        handle.client.log_batch(handle.run_id, metrics=points[i:i + 1000])
    return len(points)


def _sweep_parent(tracker, sweep: Path) -> str:
    """One parent MLflow run per sweep folder (its id kept in the folder)."""
    path = sweep / "mlflow_parent.json"
    if path.exists():
        return json.loads(path.read_text())["run_id"]
    from bench.results import KIND_TAG

    run = tracker.client.create_run(tracker.experiment_id, run_name=f"bench sweep {sweep.name}",
                                    tags={KIND_TAG: "benchmark", "bench.sweep": str(sweep)})
    tracker.client.set_terminated(run.info.run_id, FINISHED)
    write_json(path, {"run_id": run.info.run_id})
    return run.info.run_id


__all__ = ["FileRunHandle", "FileTracker", "HISTORY", "file_records", "finished_runs", "ingest", "read_record",
           "replay_metrics"]
