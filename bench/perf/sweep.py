"""`bench sweep` with 2 local workers against one process doing the same jobs one after another.

Both runs start from a fresh BENCH_HOME holding only the rendered synthetic scenes (the tiny preset,
rendered once and copied, so neither pays for it) and run the same jobs: vit-tiny on synth-cls-knn
and synth-retrieval, seeds 0 and 1 (4 jobs). "one process" is `--jobs 1` with every core given to
the one worker's torch threads, i.e. the serial schedule; "2 workers" is `--jobs 2` with half the
cores each. The ratio reported is time(2 workers) / time(1 worker): below 1 is a speed-up.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.perf import PerfRow, perf_case

ARGS = ["sweep", "--encoder", "vit-tiny", "--tasks", "synth-cls-knn,synth-retrieval", "--seeds", "0,1",
        "--synth-preset", "tiny"]


def _bench(home: Path, *args: str) -> float:
    env = {**os.environ, "BENCH_HOME": str(home), "BENCH_SYNTH_PRESET": "tiny"}
    env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench.cli", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bench {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


@perf_case("sweep: 2 local workers vs one process")
def sweep_speedup(args) -> list[PerfRow]:
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-perf-sweep-") as tmp:
        seed_home = Path(tmp) / "seed"
        _bench(seed_home, "sweep", "--dry-run", *ARGS[1:])  # plans only; renders nothing
        from bench.data.synth.pipeline import default_root

        env_home = os.environ.get("BENCH_HOME")
        os.environ["BENCH_HOME"] = str(seed_home)
        try:
            from tasks import task_meta

            for t in ("synth-cls-knn", "synth-retrieval"):
                task_meta(t).data.prepare(progress=False, preset="tiny")
            rendered = default_root("tiny")
        finally:
            if env_home is None:
                os.environ.pop("BENCH_HOME", None)
            else:
                os.environ["BENCH_HOME"] = env_home
        times = {}
        for jobs in (1, 2):
            home = Path(tmp) / f"jobs{jobs}"
            dest = home / rendered.relative_to(seed_home)
            shutil.copytree(rendered, dest)
            times[jobs] = _bench(home, *ARGS, "--jobs", str(jobs), "--threads", str(max(1, cores // jobs)))
    ratio = times[2] / times[1]
    return [PerfRow("sweep 4 jobs: 2 workers / 1 worker (wall time)", ratio, 0.9,
                    f"1 worker {times[1]:.1f}s, 2 workers {times[2]:.1f}s on {cores} cores "
                    f"(speed-up {times[1] / times[2]:.2f}x)")]
