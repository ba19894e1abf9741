"""The task registry: every module in this package registers its tasks with `register_task`.

Plug-ins add tasks through the entry-point group `spatialboost_bench.tasks`.
"""
from __future__ import annotations

from bench.registry import Registry, import_submodules
from bench.task import Metric, RealData, SyntheticData, Task

TASKS: Registry[Task] = Registry("task", discover=lambda: import_submodules("tasks", "spatialboost_bench.tasks"))


def register_task(task: Task) -> Task:
    TASKS.register(task.name, task, group=task.group)
    return task


def get_task(name: str) -> Task:
    return TASKS.get(name)


__all__ = ["TASKS", "Metric", "RealData", "SyntheticData", "Task", "get_task", "register_task"]
