"""Run the mini study: train every arm for every seed, evaluate each with the benchmark, then report.

Each (arm, seed) checkpoint lives in ``BENCH_HOME/study/<name>/s<seed>/<arm>/`` (its own folder: the
encoder name does not carry the seed) and is evaluated by ``bench run --encoder NAME --weights
NAME=FILE --seed <seed>``, so its results are ordinary benchmark records (told apart by weights id).
Rerunning skips finished checkpoints and, through the runner, finished evaluations.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.study.arms import CONFIG, arm_name, checkpoint, load_config, study_dir


def train_arm(cfg: dict, arm: str, seed: int, progress: bool) -> tuple[Path, float]:
    """Train one arm for one seed (mode ablations resume from the seed's method stage 2)."""
    from bench.spatialboost.config import resolve_config
    from bench.spatialboost.train import train

    path = checkpoint(cfg, arm, seed)
    if path.is_file():
        return path, 0.0
    kw = {"encoder": arm_name(cfg, arm), "preset": cfg["sb_preset"], "seed": seed, "out_dir": str(path.parent),
          "progress": progress}
    stages = (1, 2, 3)
    if cfg["arms"][arm] == "full":  # stages 1-2 do not depend on the stage-3 mode
        kw["resume_dir"] = str(checkpoint(cfg, "sb", seed).parent)
        stages = (3,)
    t0 = time.perf_counter()
    train(resolve_config(list(cfg.get("train_set", [])), **kw), stages)
    return path, time.perf_counter() - t0


def evaluate(cfg: dict, arm: str, seed: int, progress: bool) -> None:
    name = arm_name(cfg, arm)
    cmd = [sys.executable, "-m", "bench.cli", "run", "--encoder", name, "--tasks", ",".join(cfg["tasks"]),
           "--seed", str(seed), "--synth-preset", cfg["synth_preset"], "--no-train"]
    if arm != "base":
        cmd += ["--weights", f"{name}={checkpoint(cfg, arm, seed)}"]
    if not progress:
        cmd.append("--no-progress")
    proc = subprocess.run(cmd, capture_output=not progress, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"evaluation of {name} (seed {seed}) failed:\n{(proc.stderr or '')[-2000:]}")


def run_study(cfg: dict, *, progress: bool = True, out_doc: Path | None = None) -> Path:
    from tqdm import tqdm

    from bench.study.report import collect, write_report
    from bench.tracking import Tracker

    arms = ["base", *cfg["arms"]]
    jobs = [(arm, s) for s in cfg["seeds"] for arm in cfg["arms"]]
    flat = {"study.name": cfg["name"], "study.base": cfg["base"], "study.seeds": cfg["seeds"],
            "study.tasks": cfg["tasks"], "study.sb_preset": cfg["sb_preset"], "study.synth_preset": cfg["synth_preset"],
            "study.arms": cfg["arms"], "study.train_set": cfg.get("train_set", []), "study.config": str(CONFIG)}
    t0 = time.perf_counter()
    with Tracker().run(f"study {cfg['name']}", tags={"bench.kind": "study"}, params=flat) as run:
        from bench.encoders import encoder_prerequisite

        base_step = encoder_prerequisite(cfg["base"], progress=progress)  # vit-tiny-synth: pretrain it first
        if base_step is not None:
            base_step.run()
        seconds = {}
        for arm, seed in tqdm(jobs, desc="[study] training arms", disable=not progress, file=sys.stderr):
            _, seconds[f"{arm}-s{seed}"] = train_arm(cfg, arm, seed, progress=False)
        for arm, seed in tqdm([(a, s) for s in cfg["seeds"] for a in arms], desc="[study] evaluating",
                              disable=not progress, file=sys.stderr):
            evaluate(cfg, arm, seed, progress=False)
        results = collect(cfg)
        doc = write_report(cfg, results, out_doc, minutes=(time.perf_counter() - t0) / 60)
        run.log_metrics({"study_minutes": (time.perf_counter() - t0) / 60,
                         **{f"train_seconds_{k}": v for k, v in seconds.items()}})
        run.log_file(doc, folder="study")
        for png in sorted(doc.parent.glob(f"{doc.stem}/*.png")):
            run.log_file(png, folder="study")
    return doc


__all__ = ["CONFIG", "arm_name", "checkpoint", "load_config", "run_study", "study_dir", "train_arm"]
