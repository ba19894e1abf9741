"""Run one (encoder, task) pair in a fresh process: for tasks that declare `Need.OWN_PROCESS` (a GL
context, a simulator, a leaky C library must not live in the benchmark's process). The child loads
the encoder by name, runs the task, and sends back the result or the error text."""
from __future__ import annotations

import importlib
import multiprocessing as mp
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError


class ChildTaskError(BenchError):
    """The task failed (or its process died) in its own process."""


@dataclass
class ChildRequest:
    encoder: str
    weights: str | None
    task: str
    register_module: str  # the module that registers the task (imported in the child first)
    config: Any
    seed: int
    root: str | None
    device: str
    batch_size: int
    num_workers: int
    progress: bool
    run_id: str | None
    artifacts_dir: str | None
    state_root: str | None
    cache_root: str
    cache_dtype: str = "fp16"
    env: dict[str, str] = field(default_factory=dict)
    record_root: str | None = None  # record-file mode (sweep jobs): the run is the folder record_root/run_id


def _open_run(request: ChildRequest):
    """The parent's run, reopened here: an MLflow run, or in record-file mode the same run folder, so
    the task's curves, params and files are kept either way (the sweep driver records the folder)."""
    if not request.run_id:
        return None
    if request.record_root:
        from runners.sweep.records import FileRunHandle

        return FileRunHandle(Path(request.record_root), request.run_id)
    from bench.tracking import RunHandle, _client

    return RunHandle(_client(), request.run_id)


def _child(request: ChildRequest, queue) -> None:
    try:
        import os

        os.environ.update(request.env)
        import torch

        from bench.context import EvalContext
        from bench.encoders import load_encoder
        from bench.features import FeatureCache
        from bench.seeding import seed_everything
        from tasks import TASKS, get_task

        if request.task not in TASKS:
            importlib.import_module(request.register_module)
        seed_everything(request.seed)
        encoder = load_encoder(request.encoder, request.weights, seed=request.seed)
        run = _open_run(request)
        ctx = EvalContext(encoder, torch.device(request.device), request.seed, FeatureCache(
            request.cache_root, dtype=torch.float32 if request.cache_dtype == "fp32" else torch.float16),
                          root=Path(request.root) if request.root else None, batch_size=request.batch_size,
                          num_workers=request.num_workers, progress=request.progress, run=run,
                          artifacts_dir=Path(request.artifacts_dir) if request.artifacts_dir else None,
                          state_root=Path(request.state_root) if request.state_root else None)
        result = get_task(request.task).run(ctx, request.config)
        queue.put(("ok", result, ctx.params, ctx.cache.touched))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as text
        queue.put(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc(), []))


def run_in_child(request: ChildRequest):
    """(TaskResult, params logged by the task, cache entries read) from a spawned process."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(request, queue), name=f"bench-{request.task}")
    proc.start()
    try:
        while True:
            try:
                status, payload, extra, touched = queue.get(timeout=1.0)
                break
            except Exception:  # noqa: BLE001 - queue.Empty: is the child still alive?
                if not proc.is_alive():
                    raise ChildTaskError(f"{request.task}: its process died (exit code {proc.exitcode}) "
                                         "without a result") from None
        proc.join()
    except BaseException:
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        raise
    if status != "ok":
        raise ChildTaskError(f"{request.task} failed in its own process: {payload}\n{extra}")
    return payload, extra, touched


__all__ = ["ChildRequest", "ChildTaskError", "run_in_child"]
