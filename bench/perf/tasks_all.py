"""`bench run --tasks all` (the synthetic twins, one encoder, the CLI's default preset) against its
physical floor: one forward pass per distinct (image, resolution, flip) its protocols require.

The run is a fresh `bench run` in a temporary BENCH_HOME, started through a launcher that books the
runner's data preparation (rendering the twins) and its MLflow logging to `bench.timing` phases;
the extractor (decode wait, forward), the head trainers, evaluation loops, search and on-the-fly
encoder passes (segmentation test) book their own (`bench.timing`), every task process appending
its totals to BENCH_PHASE_LOG. The floor: every distinct (images, transform) the extractor forwarded
counted once (a second feature spec of the same images is not a second required pass), plus the
on-the-fly test passes, each timed as a bare forward of the encoder at its resolution and batch.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from bench.perf import PerfRow, perf_case

ENCODER = "vit-tiny"
LAUNCHER = r"""
import sys
from bench import timing
import bench.tracking as tracking
import runners.execute as execute

def booked(name, fn):
    def call(*a, **k):
        with timing.phase(name):
            return fn(*a, **k)
    return call

execute.Executor.prepare = booked("render", execute.Executor.prepare)
for m in ("log_params", "log_metrics", "log_json", "log_text", "log_file"):
    setattr(tracking.RunHandle, m, booked("logging", getattr(tracking.RunHandle, m)))
from bench.cli import main
with timing.phase("runner"):
    code = main(sys.argv[1:])
sys.exit(code)
"""


def floor_passes(counts: dict[str, float]) -> dict[tuple[int, int], int]:
    """Images per (H, W) the protocols require, each distinct (images, transform) counted once."""
    per_key: dict[tuple[str, tuple[int, int]], float] = defaultdict(float)
    for name, n in counts.items():
        if not name.startswith("rows|"):
            continue
        _, key, hw = name.split("|")
        h, w = (int(v) for v in hw.split("x"))
        images = key.split(".")[0]  # the (images, transform) digest; the feature spec after the dot
        per_key[images, (h, w)] = max(per_key[images, (h, w)], n) if not images.startswith("on-the-fly") \
            else per_key[images, (h, w)] + n
    out: dict[tuple[int, int], int] = defaultdict(int)
    for (_, hw), n in per_key.items():
        out[hw] += int(n)
    return dict(out)


def bare_forward_seconds(passes: dict[tuple[int, int], int], batch: int = 32) -> float:
    """Time of the floor's forward passes: the encoder alone on random images of each resolution."""
    from bench.encoders import load_encoder

    enc = load_encoder(ENCODER).eval()
    total = 0.0
    with torch.inference_mode():
        for (h, w), n in sorted(passes.items()):
            b = min(batch, n)
            x = torch.randn(b, 3, h, w)
            enc(x, n_last_blocks=4)  # warm-up
            t0 = time.perf_counter()
            reps = 2
            for _ in range(reps):
                enc(x, n_last_blocks=4)
            total += (time.perf_counter() - t0) / (reps * b) * n
    return total


@perf_case("tasks-all vs floor")
def tasks_all(args) -> list[PerfRow]:
    with tempfile.TemporaryDirectory(prefix="bench-tasks-all-") as tmp:
        home, log = Path(tmp) / "home", Path(tmp) / "phases.jsonl"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "MLFLOW_"))}
        env.update(BENCH_HOME=str(home), BENCH_PHASE_LOG=str(log))
        cmd = [sys.executable, "-c", LAUNCHER, "run", "--encoder", ENCODER, "--tasks", "all", "--no-progress",
               "--device", args.device]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if not log.exists():
            return [PerfRow("tasks-all vs floor", float("nan"), 1.5,
                            f"bench run failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")]
        failed = proc.returncode  # the runner's exit status = tasks that failed (e.g. VLM twins without an LLM)
        from bench.timing import read_log
        times, counts = read_log(log)
    passes = floor_passes(counts)
    floor = bare_forward_seconds(passes)
    runner = times.pop("runner", wall)
    booked = {k: v for k, v in times.items()}
    other = max(0.0, wall - sum(booked.values()))
    order = ["render", "decode", "forward", "head_training", "evaluation", "logging"]
    parts = ", ".join(f"{k} {booked.get(k, 0.0):.0f}s" for k in order)
    parts += f", other {other:.0f}s (process start, imports, caching, task set-up; runner {runner:.0f}s in main)"
    images = sum(passes.values())
    rows = [PerfRow(f"tasks-all vs floor ({ENCODER}, synthetic twins, tiny)", wall / floor, 1.5,
                    f"{wall:.0f}s vs {floor:.0f}s floor ({images} forward passes at {len(passes)} resolutions); {parts}"),
            PerfRow("tasks-all without rendering vs floor", (wall - booked.get("render", 0.0)) / floor, None,
                    f"the twins rendered once are reused by every later run; {failed} task(s) failed "
                    f"(the VLM twins need an LLM's weights)")]
    return rows
