"""`bench run --tasks all` (the synthetic twins, one encoder, the CLI's default preset) against its
physical floor: one forward pass per distinct (image, resolution, flip) its protocols require.

The run is a fresh `bench run` in a temporary BENCH_HOME, started through a launcher that books the
runner's data preparation (rendering the twins), its MLflow logging and, from `BOOKINGS`, the parts
of tasks that do not book themselves (3D lifting and heads, label / target preparation, pictures,
the generic fit = head training / score = evaluation of every `FeatureProbe`) to `bench.timing`
phases; the extractor (decode wait, forward), the head trainers, evaluation loops, search and
on-the-fly encoder passes (segmentation test) book their own, every task process appending its
totals to BENCH_PHASE_LOG. What is left: `startup` (imports before `main`), `runner` (plan, run
store, encoder load, summary table: in `main` outside the task runs), `task other` (inside a task
run, in no booked phase), `teardown` (exit handlers), `unbooked` (interpreter start and finalisation).

The floor: every distinct (images, transform) the extractor forwarded counted once (a second feature
spec of the same images is not a second required pass), plus the on-the-fly test passes, each timed
as the best of a few bare forwards of the encoder at its resolution and the run's batch size.
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

from bench import timing
from bench.perf import PerfRow, perf_case

ENCODER = "vit-tiny"
BATCH = 64  # `bench run`'s default --batch-size: the extractor's batch, and the floor's

# "module:attribute path" -> phase. Patched where the caller looks the name up (a function imported
# by name into a task module is booked in that module); nested phases are not counted twice.
BOOKINGS = {
    "runners.execute:Executor.prepare": "render",
    "bench.data.synth:ensure": "render",  # also the scenes the VLM twins' stage-2 recipe renders
    "bench.tracking:RunHandle.log_params": "logging",
    "bench.tracking:RunHandle.log_metrics": "logging",
    "bench.tracking:RunHandle.log_json": "logging",
    "bench.tracking:RunHandle.log_text": "logging",
    "bench.tracking:RunHandle.log_file": "logging",
    "runners.execute:Executor.run_pair": "task other",
    # 3D twins: lifting the cached view features onto the points (projection + bicubic upsample)
    "bench.data.scannet_lift:SceneLifter.get": "lift",
    "tasks.scene3d.semseg:train_probe": "head_training",
    "tasks.scene3d.semseg:scene_confusions": "evaluation",
    "tasks.scene3d.registration:build_pairs": "targets",
    "tasks.scene3d.registration:train_head": "head_training",
    "tasks.scene3d.registration:evaluate": "evaluation",
    "tasks.scene3d.grounding:build": "targets",
    "tasks.scene3d.grounding:Grounding3D.run": "head_training",  # its training loop is inline
    "tasks.scene3d.grounding:evaluate": "evaluation",
    "tasks.scene3d.qa:SceneQATask.fit": "head_training",
    "tasks.scene3d.qa:SceneQATask.predict": "evaluation",
    "tasks.scene3d.qa:corpus_bleu": "evaluation",
    "tasks.scene3d.qa:bleu1_rows": "evaluation",
    # segmentation (the mmseg dataset index, label maps at the head's size, the majority baseline)
    "tasks.segmentation.probe:train_fast": "head_training",
    "bench.data.segmentation:SegData.dataset": "targets",
    "bench.data.segmentation:load_label_maps": "targets",
    "tasks.segmentation.probe:majority_baseline": "evaluation",
    "tasks.segmentation.probe:annotations_key": "targets",  # the run memo's key: annotation files' identity
    "bench.viz:segmentation_examples": "pictures",
    # depth (16-bit ground truth read and resized to the head's grid), pictures
    "bench.data.nyu:DepthDataset.raw_depth": "targets",
    "tasks.depth.probe:resized_targets": "targets",
    "tasks.depth.probe:shared_ground_truth": "targets",  # read once per run (the run memo)
    "tasks.depth.probe:depth_examples": "pictures",
    # VLM twins: the stage-2 VLM they answer with is trained first (once per encoder and preset)
    "bench.spatialboost.vlm_checkpoint:ensure_stage2": "head_training",
    "bench.vlm.model:SpatialVLM.visual_tokens": "forward",
    "tasks.vlm.evaluate:run_on": "evaluation",
}
PROBE_PHASES = {"fit": "head_training", "score": "evaluation"}  # every FeatureProbe subclass

LAUNCHER = r"""
import time
T0 = time.perf_counter()
import atexit, functools, importlib, json, sys
from bench import timing
END = []
atexit.register(lambda: END and timing.add("teardown", time.perf_counter() - END[0]))  # runs before the log is written

def booked(name, fn):
    @functools.wraps(fn)
    def call(*a, **k):
        with timing.phase(name):
            return fn(*a, **k)
    return call

table, probe_phases = json.loads(sys.argv[1])
missing = []
for target, name in table.items():
    module, _, path = target.partition(":")
    try:
        owner = importlib.import_module(module)
        *parents, attr = path.split(".")
        for p in parents:
            owner = getattr(owner, p)
        setattr(owner, attr, booked(name, getattr(owner, attr)))
    except (ImportError, AttributeError) as exc:
        missing.append(f"{target} ({type(exc).__name__}: {exc})")
if missing:
    print("tasks-all launcher: not booked: " + "; ".join(missing), file=sys.stderr)

import tasks
from bench.task import FeatureProbe
get_task, probes = tasks.get_task, set()

def get_booked_task(name):  # a FeatureProbe's own fit / score, booked once per class
    task = get_task(name)
    for cls in type(task).__mro__:
        if issubclass(cls, FeatureProbe) and cls not in probes:
            probes.add(cls)
            for meth, phase_name in probe_phases.items():
                if meth in vars(cls):
                    setattr(cls, meth, booked(phase_name, vars(cls)[meth]))
    return task

tasks.get_task = get_booked_task
from bench.cli import main
timing.add("startup", time.perf_counter() - T0)
with timing.phase("runner"):
    code = main(sys.argv[2:])
END.append(time.perf_counter())
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


def forwarded(counts: dict[str, float]) -> int:
    """Images the run actually forwarded (every feature spec, every on-the-fly pass)."""
    return int(sum(n for name, n in counts.items() if name.startswith("rows|")))


def bare_forward_seconds(passes: dict[tuple[int, int], int], batch: int = BATCH, repeats: int = 3) -> float:
    """Time of the floor's forward passes: the encoder alone on random images of each resolution, the
    best of `repeats` batches (the floor: a shared machine only ever makes a batch slower)."""
    from bench.encoders import load_encoder

    enc = load_encoder(ENCODER).eval()
    total = 0.0
    with torch.inference_mode():
        for (h, w), n in sorted(passes.items()):
            b = min(batch, n)
            x = torch.randn(b, 3, h, w)
            enc(x, n_last_blocks=4)  # warm-up
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                enc(x, n_last_blocks=4)
                best = min(best, time.perf_counter() - t0)
            total += best / b * n
    return total


ORDER = [*timing.PHASES, "runner", "task other", "teardown"]


def breakdown(times: dict[str, float], wall: float) -> dict[str, float]:
    """Seconds per phase in `ORDER` (then any other booked phase), and `unbooked` = wall - the rest."""
    out = {k: times.get(k, 0.0) for k in ORDER}
    out.update({k: v for k, v in times.items() if k not in out})
    out["unbooked"] = max(0.0, wall - sum(out.values()))
    return out


@perf_case("tasks-all vs floor")
def tasks_all(args) -> list[PerfRow]:
    import json

    keep = os.environ.get("BENCH_PERF_KEEP_HOME")  # a folder to keep the run's BENCH_HOME in (to compare results)
    with tempfile.TemporaryDirectory(prefix="bench-tasks-all-") as tmp:
        home, log = (Path(keep) if keep else Path(tmp) / "home"), Path(tmp) / "phases.jsonl"
        if keep and home.exists() and any(home.iterdir()):
            raise SystemExit(f"BENCH_PERF_KEEP_HOME={home} is not empty: the case needs a fresh BENCH_HOME")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "MLFLOW_"))}
        env.update(BENCH_HOME=str(home), BENCH_PHASE_LOG=str(log))
        cmd = [sys.executable, "-c", LAUNCHER, json.dumps([BOOKINGS, PROBE_PHASES]),
               "run", "--encoder", ENCODER, "--tasks", "all", "--no-progress", "--device", args.device,
               "--batch-size", str(BATCH)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if not log.exists():
            return [PerfRow("tasks-all vs floor", float("nan"), 1.5,
                            f"bench run failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")]
        failed = proc.returncode  # the runner's exit status = tasks that failed (e.g. VLM twins without an LLM)
        unbooked_targets = [line for line in proc.stderr.splitlines() if line.startswith("tasks-all launcher:")]
        from bench.timing import read_log
        times, counts = read_log(log)
    passes = floor_passes(counts)
    floor = bare_forward_seconds(passes)
    phases = breakdown(times, wall)
    parts = ", ".join(f"{k} {v:.0f}s" for k, v in phases.items())
    images = sum(passes.values())
    from bench.data.sources import DEFAULT_SYNTH_PRESET  # the run's preset: BENCH_* variables are dropped above

    rows = [PerfRow(f"tasks-all vs floor ({ENCODER}, synthetic twins, {DEFAULT_SYNTH_PRESET})", wall / floor, 1.5,
                    f"{wall:.0f}s vs {floor:.0f}s floor ({images} forward passes at {len(passes)} resolutions; "
                    f"{forwarded(counts)} forwarded); {parts}" + (f"; {'; '.join(unbooked_targets)}"
                                                                  if unbooked_targets else "")),
            PerfRow("tasks-all without rendering vs floor", (wall - phases["render"]) / floor, None,
                    f"the twins rendered once are reused by every later run; {failed} task(s) failed")]
    return rows
