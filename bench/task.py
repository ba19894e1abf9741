"""The task contract: what a task *is* (metadata, read by the runner, `bench list` and reports)
apart from what it *does* (behaviour, loaded only when it runs).

A task module registers `TaskMeta` plus a lazy "module:Class" implementation, so listing tasks or
building the leaderboard imports no torch and no task code. Shapes that fit the paper's families:
`FeatureProbe` (extract once, fit, score), `RolloutTask` (simulator episodes per environment and
protocol seed, resumable), `AggregateTask` (a suite mean computed from stored member results).
Behaviour gets a typed `bench.context.EvalContext` and a typed config dataclass; it returns a
`TaskResult` (metrics plus breakdowns per class / environment / scene / seed).
"""
from __future__ import annotations

import abc
import enum
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from bench.data.sources import DataSource, SyntheticData
from bench.metrics import Metric

if TYPE_CHECKING:  # the context needs torch; the contract does not
    from bench.context import EvalContext


class Need(enum.Flag):
    """What a task needs beyond the encoder; the runner checks and provides it."""

    NONE = 0
    FEATURES = enum.auto()  # cached frozen features (ctx.features)
    ONLINE_ENCODER = enum.auto()  # batches encoded on the fly (ctx.encode)
    SIMULATOR = enum.auto()  # a physics simulator with offscreen GL
    LLM = enum.auto()  # a language model (weights from the HF cache or a local folder)
    GPU = enum.auto()  # impractical without one (runs, slowly, on a CPU)
    OWN_PROCESS = enum.auto()  # run in a child process (GL contexts, leaky C libraries)

    def names(self) -> list[str]:
        return [n.name.lower() for n in Need if n.value and n in self]


# The one vocabulary of task groups, in report order (label shown by tables and the page).
GROUPS: dict[str, str] = {"depth": "Depth estimation", "segmentation": "Semantic segmentation",
                          "3d": "3D scene understanding", "robot": "Robot learning",
                          "classification": "Classification", "retrieval": "Retrieval", "vlm": "VLM"}


@dataclass(frozen=True)
class TaskMeta:
    name: str
    group: str
    description: str
    metrics: tuple[Metric, ...]
    headline: str
    data: DataSource | None = None
    version: int = 1  # bump when a protocol change makes numbers incomparable
    protocol: str = ""  # protocol family, e.g. "dino-knn" (a tag on every run)
    paper_task: str | None = None  # the task's row/column name in the paper's tables
    twin_of: str | None = None  # the real task a synthetic twin mirrors
    reference: str | None = None  # where the protocol comes from (paper / repository)
    needs: Need = Need.FEATURES
    seeds: tuple[int, ...] = ()  # protocol seeds (empty: the run's --seed only)
    notes: Mapping[str, str] = field(default_factory=dict)  # fixed protocol facts, logged as protocol.*
    opt_in: bool = False  # not part of `--tasks all` (hours of work on a CPU): run by name or by group

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(f"task {self.name}: group {self.group!r} is not one of {sorted(GROUPS)}")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"task {self.name}: duplicate metric names")
        if self.headline not in names:
            raise ValueError(f"task {self.name}: headline {self.headline!r} is not one of its metrics")
        if self.metric(self.headline).role != "score":
            raise ValueError(f"task {self.name}: the headline must be a score")
        if self.version < 1:
            raise ValueError(f"task {self.name}: version must be >= 1")

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"task {self.name} has no metric {name!r}")

    @property
    def synthetic(self) -> bool:
        return isinstance(self.data, SyntheticData)

    @property
    def aggregate(self) -> bool:
        return False


class NonFiniteResult(ValueError):
    """A score came out NaN or infinite: the run fails with the cause instead of publishing it."""


@dataclass(frozen=True)
class ItemScores:
    """One metric's scores per test item (axis 0 = items: a test image, a query, an episode), kept
    so reports bootstrap a 95% interval over items. `statistic` (a `bench.stats.STATISTICS` name)
    turns the values, times `scale`, back into the metric: "mean" of per-item correctness x 100 is
    top-1, "nanmean" of per-image RMSE is RMSE, "miou" of per-image (2, classes) intersection /
    union counts is mIoU. Items of one test set are aligned across encoders (paired deltas)."""

    values: Any  # np.ndarray
    statistic: str = "mean"
    scale: float = 1.0

    def value(self) -> float:
        from bench.stats import item_statistic

        return self.scale * float(item_statistic(self.statistic)(self.values))


@dataclass
class TaskResult:
    metrics: dict[str, float]
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)  # "env:…"/"class:…"/"seed:…" -> metrics
    items: dict[str, ItemScores] = field(default_factory=dict)  # metric -> per-item scores (stored as items.npz)

    def validate(self, meta: TaskMeta) -> None:
        """Undeclared or missing metrics and a non-finite headline are errors, never published; per-item
        scores must reproduce their metric (to mmseg's 2-decimal rounding), or intervals would lie."""
        declared = {m.name for m in meta.metrics}
        unknown = set(self.metrics) - declared
        if unknown:
            raise ValueError(f"task {meta.name} returned undeclared metrics {sorted(unknown)}")
        for name, items in self.items.items():
            if name not in self.metrics:
                raise ValueError(f"task {meta.name}: per-item scores for {name!r}, which it did not return")
            want, got = float(self.metrics[name]), items.value()
            if math.isfinite(want) and not math.isclose(want, got, rel_tol=1e-6, abs_tol=5.1e-3):
                raise ValueError(f"task {meta.name}: per-item scores of {name} give {got}, not the metric {want}")
        missing = [meta.headline] if meta.headline not in self.metrics else []
        if missing:
            raise ValueError(f"task {meta.name} did not return its headline {missing}")
        bad = {k: v for k, v in self.metrics.items() if meta.metric(k).role == "score" and not math.isfinite(float(v))}
        if bad:
            raise NonFiniteResult(f"task {meta.name}: score metrics {bad} are not finite — a result is never "
                                  "published as NaN/inf (check the encoder's weights and features)")


class Task(abc.ABC):
    """Behaviour bound to metadata. Subclasses set `Config` (a dataclass: every protocol knob) and
    implement `run`; `bench run --set TASK.key=value` and `--config run.yaml` override the config."""

    Config: ClassVar[type] = type(None)

    def __init__(self, meta: TaskMeta, **options: Any) -> None:
        self.meta = meta
        self.options = options

    @property
    def name(self) -> str:
        return self.meta.name

    def default_config(self) -> Any:
        """The protocol's config for this task (variants of one family differ here)."""
        return self.Config()

    def check_config(self, cfg: Any) -> None:
        """Refuse a config that cannot run with this task's metadata (the planner calls it before any
        work); raise bench.config.ConfigError. Field-level checks belong in the config's __post_init__."""

    @abc.abstractmethod
    def run(self, ctx: "EvalContext", cfg: Any) -> TaskResult:
        ...


@dataclass(frozen=True)
class FeatureRequest:
    """One split's cached features: the dataset, its identity and transform (cache key), the outputs."""

    dataset: Any
    spec: Any  # bench.features.FeatureSpec
    identity: dict
    transform: str


class FeatureProbe(Task):
    """Extract once (cached), fit a head, score: kNN, linear banks, retrieval, fast dense variants."""

    @abc.abstractmethod
    def inputs(self, ctx: "EvalContext", cfg: Any) -> dict[str, FeatureRequest]:
        """Split name -> what to extract; every split goes through the feature cache."""

    def fit(self, ctx: "EvalContext", cfg: Any, inputs: dict[str, FeatureRequest], features: dict[str, Any]) -> Any:
        return None

    @abc.abstractmethod
    def score(self, ctx: "EvalContext", cfg: Any, fitted: Any, inputs: dict[str, FeatureRequest],
              features: dict[str, Any]) -> TaskResult:
        ...

    def run(self, ctx: "EvalContext", cfg: Any) -> TaskResult:
        inputs = self.inputs(ctx, cfg)
        features = {split: ctx.features(r.dataset, r.identity, r.transform, r.spec, split)
                    for split, r in inputs.items()}
        return self.score(ctx, cfg, self.fit(ctx, cfg, inputs, features), inputs, features)


class RolloutTask(Task):
    """Behaviour cloning on frozen encodings: per environment and protocol seed, fit a policy on
    demonstrations encoded online, roll it out, score the episodes. Each finished (environment,
    seed) is stored in the task's state folder, so an interrupted run resumes where it stopped."""

    @abc.abstractmethod
    def envs(self, cfg: Any) -> Sequence[str]:
        ...

    @abc.abstractmethod
    def demos(self, ctx: "EvalContext", cfg: Any, env: str) -> Any:
        ...

    @abc.abstractmethod
    def train_policy(self, ctx: "EvalContext", cfg: Any, env: str, demos: Any, seed: int, state: Path) -> Any:
        """Fit (or resume from `state`) a policy; `state` is this (env, seed)'s own folder."""

    @abc.abstractmethod
    def rollout(self, ctx: "EvalContext", cfg: Any, env: str, policy: Any, seed: int) -> dict[str, float]:
        """Episode metrics of one trained policy (e.g. success rate)."""

    def seeds(self, ctx: "EvalContext") -> tuple[int, ...]:
        return self.meta.seeds or (ctx.seed,)

    def summarize(self, per_env: dict[str, list[dict[str, float]]]) -> dict[str, float]:
        """Suite metrics from per-(env, seed) ones: mean over environments of the mean over seeds;
        `<metric>_std` (when declared) is the std over seeds of the environment-averaged metric."""
        declared = {m.name for m in self.meta.metrics}
        keys = sorted({k for runs in per_env.values() for r in runs for k in r})
        out: dict[str, float] = {}
        for k in keys:
            if k in declared:
                out[k] = statistics.fmean(statistics.fmean(r[k] for r in runs) for runs in per_env.values())
            n_seeds = min(len(runs) for runs in per_env.values())
            if f"{k}_std" in declared and n_seeds > 1:
                by_seed = [statistics.fmean(runs[i][k] for runs in per_env.values()) for i in range(n_seeds)]
                out[f"{k}_std"] = statistics.stdev(by_seed)
        return out

    def run(self, ctx: "EvalContext", cfg: Any) -> TaskResult:
        import json

        from bench.io import write_json

        per_env: dict[str, list[dict[str, float]]] = {}
        breakdown: dict[str, dict[str, float]] = {}
        for env in self.envs(cfg):
            demos = None
            for seed in self.seeds(ctx):
                state = ctx.state_dir(f"{env}/seed{seed}")
                done = state / "result.json"
                if done.exists():
                    metrics = json.loads(done.read_text())
                    ctx.log.info("%s seed %d: resumed from %s", env, seed, done)
                else:
                    demos = demos if demos is not None else self.demos(ctx, cfg, env)
                    policy = self.train_policy(ctx, cfg, env, demos, seed, state)
                    metrics = {k: float(v) for k, v in self.rollout(ctx, cfg, env, policy, seed).items()}
                    write_json(done, metrics)
                per_env.setdefault(env, []).append(metrics)
                breakdown[f"env:{env}/seed:{seed}"] = metrics
            runs = per_env[env]
            breakdown[f"env:{env}"] = {k: statistics.fmean(r[k] for r in runs) for k in runs[0]}
        return TaskResult(self.summarize(per_env), breakdown)


@dataclass(frozen=True)
class AggregateTask:
    """A suite score computed from stored member results (e.g. `cortexbench-average`): never run
    directly; recorded when every member has a result for the same encoder and seed."""

    meta: TaskMeta
    members: tuple[str, ...]
    metric: str | None = None  # the members' metric to reduce (None: each member's headline)
    reduce: str = "mean"

    def __post_init__(self) -> None:
        if self.reduce not in ("mean",):
            raise ValueError(f"aggregate {self.meta.name}: reduce must be 'mean'")
        if not self.members:
            raise ValueError(f"aggregate {self.meta.name}: no members")

    @property
    def name(self) -> str:
        return self.meta.name

    def compute(self, member_values: dict[str, float]) -> TaskResult:
        missing = [m for m in self.members if m not in member_values]
        if missing:
            raise ValueError(f"aggregate {self.meta.name}: members without a result: {missing}")
        values = [float(member_values[m]) for m in self.members]
        return TaskResult({self.meta.headline: statistics.fmean(values)},
                          {f"member:{m}": {self.meta.headline: float(member_values[m])} for m in self.members})


__all__ = ["GROUPS", "AggregateTask", "ItemScores", "NonFiniteResult", "FeatureProbe", "FeatureRequest", "Need", "RolloutTask", "Task", "TaskMeta",
           "TaskResult"]
