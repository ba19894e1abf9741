"""Drive a sweep: plan the jobs, train missing +sb checkpoints once (never inside parallel jobs),
hand the store's finished records to the jobs, skip done jobs, run the rest on the chosen executor
and record every finished run into MLflow as it completes (file records), then say what is left.
The driver is a foreground process: it returns when the jobs have ended (or, for SLURM with
--no-wait, once they are submitted; `bench sweep status` and a rerun ingest them later)."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.io import write_json
from runners.sweep.job import DONE, LOCK, direct_logging
from runners.sweep.records import finished_runs, ingest
from runners.sweep.spec import Job, SweepSpec, plan_jobs, write_jobs


@dataclass
class SweepOutcome:
    folder: Path
    jobs: int
    skipped: int  # done before this call
    ran: int
    failed: list[str]
    recorded: int


def prepare_prerequisites(spec: SweepSpec, out) -> None:
    """Train what the encoders need (e.g. a +sb checkpoint) once, here, before jobs run in parallel."""
    from bench.encoders import check_encoder_name, encoder_prerequisite

    for enc in dict.fromkeys(check_encoder_name(e) for e in spec.encoders):
        pre = encoder_prerequisite(enc, spec.weights.get(enc), progress=False)
        if pre is None:
            continue
        if not pre.ready:
            raise BenchError(f"{enc}: {pre.reason.strip() or pre.detail}")
        print(f"[sweep] {pre.action} for {enc} ({pre.detail}) ...", file=out, flush=True)
        pre.run()


def prepare_data(jobs: list[Job], spec: SweepSpec) -> None:
    """Generate the synthetic scenes once (parallel jobs would race to render them)."""
    from tasks import task_meta

    for name in dict.fromkeys(t for j in jobs for t in j.tasks):
        meta = task_meta(name)
        if meta.data is not None:
            meta.data.prepare(progress=False, preset=spec.synth_preset)


def write_stored(sweep: Path, spec: SweepSpec, jobs: list[Job]) -> None:
    """The store's finished records of these encoders and tasks, for jobs that do not read it."""
    from bench.store import read_records

    encoders = sorted({j.encoder for j in jobs})
    tasks = sorted({t for j in jobs for t in j.tasks})
    write_json(sweep / "stored.json", [r.to_dict() for r in read_records(kinds=("task",), encoders=encoders,
                                                                        tasks=tasks)])


def run_sweep(spec: SweepSpec, executor: str = "local", jobs_at_once: int = 2, slurm: Any = None,
              out=None, dry_run: bool = False, wait: bool = True) -> SweepOutcome:
    out = out or sys.stdout
    jobs = plan_jobs(spec)
    sweep = write_jobs(spec, jobs)
    dirs = [j.folder(sweep) for j in jobs]
    todo = [d for d in dirs if not (d / DONE).exists()]
    print(f"[sweep] {sweep}: {len(jobs)} job(s) ({len(jobs) - len(todo)} done already), executor {executor}",
          file=out, flush=True)
    if dry_run:
        for j in jobs:
            state = "done" if (j.folder(sweep) / DONE).exists() else "to run"
            print(f"  {j.id}: {j.encoder} seed {j.seed} tasks {','.join(j.tasks)} [{state}]", file=out)
        if executor == "slurm":
            from runners.sweep.slurm import SlurmOptions, submission_text

            print(submission_text(sweep, max(1, len(todo)), slurm or SlurmOptions()), file=out)
        return SweepOutcome(sweep, len(jobs), len(jobs) - len(todo), 0, [], 0)
    if executor == "slurm" and not direct_logging():
        print("[sweep] no tracking server (MLFLOW_TRACKING_URI is not http(s)://): jobs write record files "
              "beside their logs and this driver records them (no SQLite over a network file system)", file=out)
    recorded = 0 if direct_logging() else ingest(sweep, out)[0]  # a killed earlier driver's leftovers
    if todo:
        prepare_prerequisites(spec, out)
        prepare_data(jobs, spec)
        write_stored(sweep, spec, jobs)
    failed: list[str] = []

    def finished(job_dir: Path, ok: bool) -> None:
        nonlocal recorded
        if not ok or not (job_dir / DONE).exists():
            failed.append(job_dir.name)
            print(f"[sweep] {job_dir.name}: FAILED (log: {job_dir / 'log.txt'})", file=out, flush=True)
        if not direct_logging():
            recorded += ingest(sweep, out)[0]

    if todo and executor == "local":
        from runners.sweep.local import run_pool

        run_pool(todo, jobs_at_once, threads=spec.threads,
                 on_finish=lambda f: finished(f.job, f.returncode == 0))
    elif todo and executor in ("slurm", "debug"):
        from runners.sweep.slurm import SlurmOptions, submit_array

        submitted = submit_array(sweep, todo, slurm or SlurmOptions(), cluster=executor)
        write_json(sweep / "slurm_jobs.json", [j.job_id for j in submitted])
        print(f"[sweep] submitted {len(submitted)} array task(s): {submitted[0].job_id.split('_')[0]} "
              f"(logs: {sweep / 'slurm'})", file=out, flush=True)
        if wait or executor == "debug":
            for d, j in zip(todo, submitted):
                try:
                    j.result()
                    finished(d, True)
                except Exception as exc:  # noqa: BLE001 - one failed array task; the others count
                    print(f"[sweep] {d.name}: {type(exc).__name__}: {str(exc)[:300]}", file=out)
                    finished(d, False)
    elif todo:
        raise BenchError(f"unknown executor {executor!r}: local | slurm")
    left = [d.name for d in dirs if not (d / DONE).exists()]
    print(f"[sweep] {len(dirs) - len(left)}/{len(dirs)} job(s) done, {recorded} run(s) recorded"
          + (f"; not done: {', '.join(left)} (rerun the same command to finish them)" if left else ""),
          file=out, flush=True)
    return SweepOutcome(sweep, len(jobs), len(jobs) - len(todo), len(todo), failed, recorded)


def job_state(job_dir: Path) -> str:
    import fcntl

    if (job_dir / DONE).exists():
        return "done"
    lock = job_dir / LOCK
    if lock.exists():
        with open(lock) as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return "running"
    return "failed" if (job_dir / "failed.json").exists() else ("started" if lock.exists() else "pending")


def status(sweep: Path, out=None) -> dict[str, Any]:
    """Per job: done / running / failed / started (killed, resumable) / pending, and record counts."""
    out = out or sys.stdout
    meta = json.loads((sweep / "sweep.json").read_text())
    counts: dict[str, int] = {}
    for jid in meta["jobs"]:
        d = sweep / "jobs" / jid
        state = job_state(d)
        counts[state] = counts.get(state, 0) + 1
        runs = sorted((d / "records").glob("*/status.json"))
        print(f"  {state:8} {jid}  ({len(runs)} run folder(s); log {d / 'log.txt'})", file=out)
    recorded = sum(1 for r in finished_runs(sweep) if (r / "ingested.json").exists())
    print(f"[sweep] {sweep.name}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
          + f"; {recorded} run(s) recorded in MLflow", file=out)
    return {"counts": counts, "recorded": recorded}


__all__ = ["SweepOutcome", "job_state", "run_sweep", "status"]
