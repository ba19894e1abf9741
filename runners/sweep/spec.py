"""What a sweep is: encoders x tasks x seeds, cut into jobs of (encoder, seed, tasks that share
images), so each job extracts an encoder's features once for all of its tasks. Every job is a
folder under the sweep's folder (job.json, log.txt, lock, done.json, records/) that any executor
(local pool, SLURM array, submitit debug) runs the same way; a job whose done.json exists is not
submitted again, and within a job a finished identity is never rerun."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError


@dataclass
class SweepSpec:
    encoders: list[str]
    tasks: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    synth_preset: str = "small"
    batch_size: int = 64
    device: str = "auto"
    num_workers: int = 0  # data-loader workers per job (jobs already run in parallel)
    threads: int = 0  # torch intra-op threads per job (0: cores / parallel jobs)
    task_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    weights: dict[str, str] = field(default_factory=dict)
    name: str = ""  # the sweep's folder name (default: a hash of the rest)

    def __post_init__(self) -> None:
        if not self.encoders or not self.tasks or not self.seeds:
            raise BenchError("a sweep needs --encoder, --tasks and --seeds (each at least one value)")
        if any(s < 0 for s in self.seeds):
            raise BenchError(f"--seeds must be >= 0, got {self.seeds}")

    def key(self) -> str:
        body = {k: v for k, v in asdict(self).items() if k not in ("name", "threads", "num_workers")}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]

    def folder(self) -> Path:
        from bench.paths import bench_home

        return bench_home() / "sweeps" / (self.name or f"sweep-{self.key()}")


@dataclass
class Job:
    """One unit of work: one encoder, one seed, tasks that read the same images."""

    id: str
    encoder: str
    seed: int
    tasks: list[str]
    spec: dict[str, Any]  # the SweepSpec as a dict (names and config only: jobs travel as files)

    def folder(self, sweep: Path) -> Path:
        return sweep / "jobs" / self.id

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Job":
        return cls(**d)


def data_group(task: str) -> str:
    """Tasks reading the same images share a key (their data source), so one job serves them all."""
    from tasks import task_meta

    meta = task_meta(task)
    data = meta.data
    if data is None:
        return f"task:{task}"
    return f"{type(data).__name__}:{getattr(data, 'name', '')}:{getattr(data, 'layout', '')}:" \
           f"{getattr(data, 'env', '') or ''}"


def resolve_tasks(tasks: list[str], preset: str) -> list[str]:
    """`--tasks` as `bench run` reads it (all, groups, names with suggestions); aggregates are left to
    `bench run` (they are computed from stored member results, not by jobs)."""
    from runners.plan import select

    names, _aggregates, _skipped = select(tasks, preset)
    return names


def plan_jobs(spec: SweepSpec) -> list[Job]:
    from bench.encoders import check_encoder_name

    encoders = list(dict.fromkeys(check_encoder_name(e) for e in spec.encoders))
    tasks = resolve_tasks(spec.tasks, spec.synth_preset)
    groups: dict[str, list[str]] = {}
    for t in tasks:
        groups.setdefault(data_group(t), []).append(t)
    body = asdict(spec)
    jobs = []
    for enc in encoders:
        for seed in spec.seeds:
            for key, members in groups.items():
                jid = hashlib.sha256(json.dumps([spec.key(), enc, seed, members]).encode()).hexdigest()[:10]
                safe = enc.replace("/", "_").replace("+", "_")
                jobs.append(Job(f"{safe}-s{seed}-{members[0]}-{jid}", enc, seed, members, body))
    return jobs


def write_jobs(spec: SweepSpec, jobs: list[Job]) -> Path:
    from bench.io import write_json

    sweep = spec.folder()
    write_json(sweep / "sweep.json", {"spec": asdict(spec), "jobs": [j.id for j in jobs]})
    for j in jobs:
        path = j.folder(sweep) / "job.json"
        if not path.exists():
            write_json(path, j.to_dict())
    return sweep


__all__ = ["Job", "SweepSpec", "data_group", "plan_jobs", "resolve_tasks", "write_jobs"]
