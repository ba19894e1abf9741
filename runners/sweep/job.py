"""The job function every executor runs: one job folder -> the `bench run` executor over its tasks,
its records written as files (no tracking server) or to MLflow directly (MLFLOW_TRACKING_URI at a
server). `SweepJob` is a submitit callable whose `checkpoint()` requeues the same folder on
preemption or timeout; the rerun skips every identity already finished, so nothing is done twice.

    python -m runners.sweep.job JOB_FOLDER     # what a local pool worker runs
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.io import write_json

DONE, LOCK, LOG = "done.json", "lock", "log.txt"


def direct_logging() -> bool:
    """Jobs log to MLflow themselves only when a tracking server takes many writers."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    return uri.startswith(("http://", "https://"))


def _executor_class():
    from runners.execute import Executor

    from runners.sweep.records import FileTracker, file_records

    class FileExecutor(Executor):
        """The run executor writing record files under the job folder (the driver ingests them)."""

        sweep: Path
        job_dir: Path

        def make_tracker(self):
            return FileTracker(self.job_dir / "records")

        def finished(self):
            known = {}
            stored = self.sweep / "stored.json"  # the store's finished records, written by the driver
            if stored.exists():
                from bench.results import ResultRecord

                known = {(r := ResultRecord.from_dict(d)).identity_hash: r for d in json.loads(stored.read_text())}
            return {**known, **file_records(self.sweep)}


    return FileExecutor


def run_job(job_dir: str | Path) -> dict[str, Any]:
    """Run one job folder (idempotent: a done job returns its summary; a job locked by a live
    worker is left to it)."""
    job_dir = Path(job_dir)
    done = job_dir / DONE
    if done.exists():
        return json.loads(done.read_text())
    with open(job_dir / LOCK, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return {"status": "busy", "job": job_dir.name}
        if done.exists():
            return json.loads(done.read_text())
        return _run_locked(job_dir)


def _run_locked(job_dir: Path) -> dict[str, Any]:
    from runners.plan import RunConfig, make_plan
    from runners.sweep.spec import Job

    job = Job.from_dict(json.loads((job_dir / "job.json").read_text()))
    spec = job.spec
    if spec.get("threads"):
        import torch

        torch.set_num_threads(int(spec["threads"]))
    os.environ.setdefault("BENCH_SYNTH_PRESET", spec["synth_preset"])
    cfg = RunConfig(encoders=[job.encoder], tasks=job.tasks, seed=job.seed, device=spec["device"],
                    batch_size=spec["batch_size"], num_workers=spec["num_workers"], progress=False,
                    synth_preset=spec["synth_preset"], weights={k: v for k, v in spec["weights"].items()
                                                                if k == job.encoder},
                    task_config={t: c for t, c in spec["task_config"].items() if t in job.tasks},
                    train_missing=False)  # the driver trains prerequisites once, before any job starts
    t0 = time.time()
    plan = make_plan(cfg)
    if direct_logging():
        from runners.execute import Executor

        executor = Executor(plan)
    else:
        executor = _executor_class()(plan)
        executor.sweep, executor.job_dir = job_dir.parent.parent, job_dir
    records = executor.execute()
    summary = {"status": "done" if not executor.failures else "failed", "job": job_dir.name,
               "records": [r.identity_hash for r in records], "reused": executor.reused,
               "failures": [{"encoder": e, "task": t, "cause": c} for e, t, c in executor.failures],
               "seconds": round(time.time() - t0, 2)}
    if not executor.failures:
        write_json(job_dir / DONE, summary)
    else:
        write_json(job_dir / "failed.json", summary)
    return summary


class SweepJob:
    """submitit callable: `SweepJob()(job_folder)`; requeued by `checkpoint()` on preemption/timeout."""

    def __call__(self, job_dir: str) -> dict[str, Any]:
        return run_job(job_dir)

    def checkpoint(self, job_dir: str):
        import submitit

        return submitit.helpers.DelayedSubmission(SweepJob(), job_dir)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m runners.sweep.job JOB_FOLDER", file=sys.stderr)
        return 2
    try:
        summary = run_job(argv[0])
    except BaseException:  # noqa: BLE001 - the log says why; the exit code tells the pool
        traceback.print_exc()
        return 1
    print(json.dumps(summary), flush=True)
    return 0 if summary.get("status") in ("done", "busy") else 1


if __name__ == "__main__":
    sys.exit(main())
