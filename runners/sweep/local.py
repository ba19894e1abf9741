"""The default executor: our own bounded pool on this machine. At most `jobs` worker processes at
once (`python -m runners.sweep.job FOLDER`), each pinned to its slice of the GPUs by
CUDA_VISIBLE_DEVICES and to its share of the cores by torch threads. No server, no daemon: the
workers are children of the driver, which waits for them, and they die with it (PR_SET_PDEATHSIG),
so a killed driver leaves nothing running; rerunning it picks up what is missing.

Why not submitit's LocalExecutor: it starts every submission at once (no cap) on the same GPUs, and
kills a job after a 2-minute default timeout (see docs/scale-out.md)."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def gpu_slices(n_jobs: int, gpus: Sequence[int]) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each worker slot: GPUs dealt round-robin; "" (CPU) when there are none."""
    if not gpus:
        return [""] * n_jobs
    if n_jobs <= len(gpus):  # each slot gets its own GPUs
        per = len(gpus) // n_jobs
        return [",".join(str(g) for g in gpus[i * per:(i + 1) * per]) for i in range(n_jobs)]
    return [str(gpus[i % len(gpus)]) for i in range(n_jobs)]


def visible_gpus() -> list[int]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [int(g) for g in env.split(",") if g.strip().isdigit()]
    try:
        import torch

        return list(range(torch.cuda.device_count()))
    except Exception:  # noqa: BLE001
        return []


@dataclass
class Finished:
    job: Path
    returncode: int
    seconds: float


def run_pool(job_dirs: Sequence[Path], jobs: int, *, gpus: Sequence[int] | None = None, threads: int = 0,
             on_finish: Callable[[Finished], None] | None = None, poll: float = 0.2) -> list[Finished]:
    """Run every job folder with at most `jobs` workers at once; returns when all have ended."""
    jobs = max(1, int(jobs))
    slots = gpu_slices(jobs, visible_gpus() if gpus is None else list(gpus))
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    queue, running, done = list(job_dirs), {}, []
    free = list(range(jobs))
    try:
        while queue or running:
            while queue and free:
                slot, job = free.pop(0), queue.pop(0)
                env = {**os.environ, "CUDA_VISIBLE_DEVICES": slots[slot], "OMP_NUM_THREADS": str(threads),
                       "BENCH_SWEEP_SLOT": str(slot)}
                log = open(job / "log.txt", "ab")
                proc = subprocess.Popen([sys.executable, "-m", "runners.sweep.job", str(job)], stdout=log,
                                        stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent,
                                        cwd=str(Path(__file__).resolve().parents[2]))
                log.close()
                running[proc] = (slot, job, time.time())
            for proc in [p for p in running if p.poll() is not None]:
                slot, job, t0 = running.pop(proc)
                free.append(slot)
                fin = Finished(job, proc.returncode, time.time() - t0)
                done.append(fin)
                if on_finish is not None:
                    on_finish(fin)
            time.sleep(poll)
    finally:
        for proc in running:  # interrupted (Ctrl-C): no orphan keeps writing
            proc.kill()
            proc.wait()
    return done


__all__ = ["Finished", "gpu_slices", "run_pool", "visible_gpus"]
