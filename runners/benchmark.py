"""`bench run`: every requested (encoder, task) pair, one MLflow child run each."""
from __future__ import annotations

import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from bench.encoders import check_encoder_name, load_encoder
from bench.errors import BenchError
from bench.features import Extractor, FeatureCache, default_num_workers, resolve_device
from bench.task import Task, synth_preset
from bench.tracking import DIR_TAG, KIND_TAG, Tracker, code_version
from runners.context import TaskContext
from tasks import TASKS


@dataclass
class RunConfig:
    encoders: list[str]
    tasks: list[str] = field(default_factory=lambda: ["all"])
    seed: int = 0
    device: str = "auto"
    batch_size: int = 64
    num_workers: int = -1  # -1: pick for this machine
    weights: dict[str, str] = field(default_factory=dict)  # encoder name -> weights file
    progress: bool = True


@dataclass
class Selection:
    tasks: list[Task]
    skipped: list[tuple[str, str]]  # (task, reason)


def select_tasks(requested: list[str]) -> Selection:
    """`all` = every task whose data is present; an explicitly named task must have its data."""
    if requested == ["all"]:
        chosen, skipped = [], []
        for name in TASKS.names():
            task = TASKS.get(name)
            ok, where = task.data.status()
            (chosen.append(task) if ok else skipped.append((name, where)))
        return Selection(chosen, skipped)
    tasks = [TASKS.get(name) for name in requested]  # unknown names raise with suggestions
    for task in tasks:
        if not task.synthetic:
            task.data.prepare(progress=False)  # missing real data raises here, before any work
    return Selection(tasks, [])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_benchmark(cfg: RunConfig, out=None) -> list[dict]:
    out = out or sys.stdout
    for name in cfg.encoders:
        check_encoder_name(name)
    selection = select_tasks(cfg.tasks)
    for name, reason in selection.skipped:
        print(f"skip {name}: data missing — {reason}", file=out)
    if not selection.tasks:
        raise BenchError("no task to run: " + ", ".join(f"{n} ({r})" for n, r in selection.skipped))

    device = resolve_device(cfg.device)
    workers = default_num_workers() if cfg.num_workers < 0 else cfg.num_workers
    encoders = {name: load_encoder(name, cfg.weights.get(name), seed=cfg.seed) for name in cfg.encoders}
    cache = FeatureCache()
    tracker = Tracker()
    results: list[dict] = []
    resolved = OmegaConf.to_yaml(OmegaConf.create({**asdict(cfg), "device": str(device), "num_workers": workers,
                                                   "synth_preset": synth_preset(), "code_version": code_version()}))
    with tracker.run(f"bench run {time.strftime('%Y-%m-%d %H:%M:%S')}", tags={KIND_TAG: "benchmark"},
                     params={"encoders": ",".join(cfg.encoders), "tasks": ",".join(t.name for t in selection.tasks),
                             "seed": cfg.seed, "device": str(device), "code_version": code_version()}) as parent:
        parent.log_text("config.yaml", resolved)
        for task in selection.tasks:
            root = task.data.prepare(progress=cfg.progress)
            for name, encoder in encoders.items():
                seed_everything(cfg.seed)
                results.append(_run_one(tracker, parent, task, root, encoder, cfg, device, workers, cache, resolved, out))
        parent.log_metrics({"features_extracted": cache.stats.extracted, "features_reused": cache.stats.reused})
        parent.log_json("results.json", results)
    return results


def _run_one(tracker, parent, task: Task, root: Path, encoder, cfg: RunConfig, device, workers, cache, resolved, out):
    params = {
        "encoder": encoder.name, "encoder_label": encoder.label, "backend": encoder.backend,
        "weights_id": encoder.weights_id, "random_init": encoder.random_init, "task": task.name,
        "group": task.group, "seed": cfg.seed, "code_version": code_version(), "device": str(device),
        "data_root": str(root), **({"synth_preset": synth_preset()} if task.synthetic else {}),
        **{f"protocol.{k}": v for k, v in task.protocol.items()},
    }
    tags = {KIND_TAG: "task", "bench.protocol": task.protocol.get("protocol", ""),
            **{DIR_TAG + m.name: m.direction for m in task.metrics}}
    print(f"[{encoder.label}] {task.name} ...", file=out, flush=True)
    t0 = time.perf_counter()
    with tracker.run(f"{encoder.name}/{task.name}", parent=parent, tags=tags, params=params) as run, \
            tempfile.TemporaryDirectory(prefix="bench-artifacts-") as artifacts:
        extractor = Extractor(encoder, device=device, batch_size=cfg.batch_size, num_workers=workers)
        ctx = TaskContext(encoder, device, cfg.seed, cache, extractor, run=run, progress=cfg.progress,
                          artifacts_dir=Path(artifacts))
        metrics = task.evaluate(ctx, root)
        if any(Path(artifacts).iterdir()):
            run.client.log_artifacts(run.run_id, artifacts)
        unknown = set(metrics) - {m.name for m in task.metrics}
        if unknown:
            raise BenchError(f"task {task.name} returned undeclared metrics {sorted(unknown)}")
        run.log_metrics(metrics)
        run.log_metrics({"wall_seconds": time.perf_counter() - t0})
        result = {
            "encoder": encoder.name, "encoder_label": encoder.label, "task": task.name, "run_id": run.run_id,
            "headline": task.headline, "protocol": task.protocol, "params": {**params, **ctx.params},
            "metrics": {k: {"value": v, "higher_is_better": task.metric(k).higher_is_better} for k, v in metrics.items()},
        }
        run.log_text("config.yaml", resolved)
        run.log_json("result.json", result)
    head = metrics[task.headline]
    print(f"[{encoder.label}] {task.name}: {task.headline} = {head:.3f} "
          f"({task.metric(task.headline).direction} is better, {time.perf_counter() - t0:.1f}s)", file=out, flush=True)
    return result


__all__ = ["RunConfig", "run_benchmark", "select_tasks"]
