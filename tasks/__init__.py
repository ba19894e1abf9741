"""The task registry. Each family package registers `TaskMeta` (light: no torch) with a lazy
"module:Class" implementation; `get_task(name)` binds the two when a task is about to run.

    register_task(TaskMeta(name="my-probe", ...), "tasks.mine.probe:MyProbe", variant="x")

`TASKS.entries()` gives every entry's `meta["meta"]` (a `TaskMeta`) without importing any task code,
which is all `bench list tasks`, the planner and the reports need. Plug-ins add tasks through the
entry-point group `spatialboost_bench.tasks`.
"""
from __future__ import annotations

import sys
from typing import Any

from bench.registry import Registry, import_submodules
from bench.task import AggregateTask, Task, TaskMeta

TASKS: Registry[Any] = Registry("task", discover=lambda: import_submodules("tasks", "spatialboost_bench.tasks"))
_BOUND: dict[str, Task | AggregateTask] = {}


def register_task(meta: TaskMeta, impl: str | type, **options: Any) -> TaskMeta:
    """`impl`: a Task subclass or its lazy "module:Class" path; `options` go to its constructor."""
    TASKS.register(meta.name, impl, meta=meta, options=options, group=meta.group, module=_caller())
    return meta


def register_aggregate(task: AggregateTask) -> AggregateTask:
    TASKS.register(task.meta.name, task, meta=task.meta, options={}, group=task.meta.group, aggregate=True,
                   module=_caller())
    return task


def _caller() -> str:
    """The registering module (a child process imports it to find the task again)."""
    return sys._getframe(2).f_globals.get("__name__", "tasks")


def task_meta(name: str) -> TaskMeta:
    return TASKS.entry(name).meta["meta"]


def is_aggregate(name: str) -> bool:
    return bool(TASKS.entry(name).meta.get("aggregate"))


def catalog() -> dict[str, TaskMeta]:
    """Every task's metadata, in registration order, without loading any implementation."""
    return {e.name: e.meta["meta"] for e in TASKS.entries()}


def get_task(name: str) -> Task | AggregateTask:
    """The task bound to its behaviour (imports the implementation module on first use)."""
    if name not in _BOUND:
        entry = TASKS.entry(name)
        target = entry.load()
        _BOUND[name] = target if entry.meta.get("aggregate") else target(entry.meta["meta"], **entry.meta["options"])
    return _BOUND[name]


__all__ = ["TASKS", "catalog", "get_task", "is_aggregate", "register_aggregate", "register_task", "task_meta"]
