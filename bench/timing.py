"""A light phase timer: where a benchmark run's wall time goes (`PHASES`: render, start-up, decode,
forward, 3D lifting, label / target preparation, head training, evaluation, pictures, logging), at
the cost of two `perf_counter` calls per phase entry.

`with phase("forward"):` adds the block's time to the process's totals; phases nest, and an inner
phase's time is not counted again in the outer one, so the totals add up to the timed wall time.
`count("forward_images", n)` keeps counters beside the times (e.g. images per input resolution).
`snapshot()` gives {"phase.NAME_s": seconds, "count.NAME": n} (what a run logs as params).

Across processes (the runner gives every task a child process): with `BENCH_PHASE_LOG=path` set, a
process appends its totals to that JSON-lines file at exit (what `bench perf`'s tasks-all case reads).
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import inspect
import json
import os
import threading
import time
from collections import defaultdict
from typing import Iterator

PHASES = ("render", "startup", "decode", "forward", "lift", "targets", "head_training", "evaluation", "pictures",
          "logging")
PHASE_LOG_ENV = "BENCH_PHASE_LOG"

_times: dict[str, float] = defaultdict(float)
_counts: dict[str, float] = defaultdict(float)
_local = threading.local()


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    t0 = time.perf_counter()
    stack.append(0.0)  # time spent in phases nested inside this one
    try:
        yield
    finally:
        inner = stack.pop()
        spent = time.perf_counter() - t0
        _times[name] += spent - inner
        if stack:
            stack[-1] += spent


def timed(name: str):
    """Decorator: every call of the function is a `phase(name)`; for a generator, every resumption
    (the caller's own work between items is not counted)."""
    def deco(fn):
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen(*args, **kwargs):
                it = fn(*args, **kwargs)
                while True:
                    with phase(name):
                        try:
                            item = next(it)
                        except StopIteration:
                            return
                    yield item
            return gen

        @functools.wraps(fn)
        def call(*args, **kwargs):
            with phase(name):
                return fn(*args, **kwargs)
        return call
    return deco


def add(name: str, seconds: float) -> None:
    """Time measured elsewhere (e.g. waiting on a data loader), booked to `name`."""
    _times[name] += seconds
    stack = getattr(_local, "stack", None)
    if stack:
        stack[-1] += seconds


def count(name: str, n: float = 1) -> None:
    _counts[name] += n


def snapshot() -> dict[str, float]:
    out = {f"phase.{k}_s": round(v, 3) for k, v in sorted(_times.items())}
    out.update({f"count.{k}": v for k, v in sorted(_counts.items())})
    return out


def reset() -> None:
    _times.clear()
    _counts.clear()


def _write_log() -> None:
    path = os.environ.get(PHASE_LOG_ENV)
    if not path or not (_times or _counts):
        return
    line = json.dumps({"pid": os.getpid(), "times": dict(_times), "counts": dict(_counts)})
    with open(path, "a") as f:  # one short line per process: appends do not interleave
        f.write(line + "\n")


def read_log(path) -> tuple[dict[str, float], dict[str, float]]:
    """Totals over every process that wrote to `path`: (seconds per phase, counters)."""
    times: dict[str, float] = defaultdict(float)
    counts: dict[str, float] = defaultdict(float)
    with open(path) as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                for k, v in rec["times"].items():
                    times[k] += v
                for k, v in rec["counts"].items():
                    counts[k] += v
    return dict(times), dict(counts)


atexit.register(_write_log)

__all__ = ["PHASES", "PHASE_LOG_ENV", "add", "count", "phase", "read_log", "reset", "snapshot", "timed"]
