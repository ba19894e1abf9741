"""A toy task that runs in its own process and logs what robot tasks log there -- a curve per epoch
(`ctx.log_metrics(..., step=epoch)`), run-time params, a picture-like file written to
`ctx.artifact_path` and one logged with `ctx.log_artifact` -- for tests/test_sweep_records.py.
Importing this module registers it (the child process imports it too, to find the task again)."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.metrics import Metric
from bench.task import Need, Task, TaskMeta, TaskResult
from tasks import register_task

NAME = "toy-child-curves"
EPOCHS = 4


@dataclass(frozen=True)
class CurveConfig:
    epochs: int = EPOCHS


class ChildCurves(Task):
    Config = CurveConfig

    def run(self, ctx, cfg: CurveConfig) -> TaskResult:
        for epoch in range(cfg.epochs):
            ctx.log_metrics({"toy_loss": 1.0 / (epoch + 1), "toy_success": 25.0 * epoch}, step=epoch)
        ctx.log_params(child_pid=os.getpid())
        ctx.artifact_path("toy_curve.txt").write_text("epoch,loss\n" + "".join(
            f"{e},{1.0 / (e + 1)}\n" for e in range(cfg.epochs)))
        with tempfile.TemporaryDirectory() as tmp:
            video = Path(tmp) / "toy_episode.gif"
            video.write_bytes(b"GIF89a" + bytes(range(32)))
            ctx.log_artifact(video, "videos")
        return TaskResult({"success": 25.0 * (cfg.epochs - 1)})


register_task(TaskMeta(NAME, "robot", "logs curves and files from its own process",
                       (Metric("success", True, "last epoch's success", "%"),), "success", needs=Need.OWN_PROCESS),
              "tests.sweep_toy_tasks:ChildCurves")
