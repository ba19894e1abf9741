"""Plan a `bench run` before doing any work: which encoders (canonical names) and tasks (with their
resolved configs), what data will be generated, which `+sb` checkpoints must be trained first (with
an estimate), which features are cached already and what will be extracted.

`bench run --dry-run` prints this plan and stops; nothing here trains, extracts or renders.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import config_hash, flatten, resolve
from bench.errors import BenchError
from bench.paths import cache_root
from bench.task import GROUPS, Need, TaskMeta


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
    synth_preset: str = "small"  # size of the generated scenes the synthetic twins read
    sb_preset: str = "tiny"  # SpatialBoost recipe preset used when a +sb checkpoint must be trained
    task_config: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> {dotted key: value}
    train_missing: bool = True  # train missing +sb checkpoints first (else: an error says how)
    force: bool = False  # recompute (encoder, task, config, seed) identities that have a finished result
    cache_dtype: str = "fp16"  # feature storage: fp16 (default) | fp32 (features beyond fp16 range)

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise BenchError(f"--seed must be >= 0, got {self.seed}")
        if self.batch_size < 1:
            raise BenchError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not self.encoders or any(not e.strip() for e in self.encoders):
            raise BenchError("--encoder needs at least one non-empty name (see `bench list encoders`)")
        if not self.tasks or any(not t.strip() for t in self.tasks):
            raise BenchError("--tasks needs 'all' or task names (see `bench list tasks`)")
        if self.cache_dtype not in ("fp16", "fp32"):
            raise BenchError(f"--cache-dtype must be fp16 or fp32, got {self.cache_dtype!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise BenchError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise BenchError("--device cuda: no CUDA GPU is visible here (use --device auto or cpu)")


@dataclass
class TaskPlan:
    meta: TaskMeta
    config: Any  # the resolved config dataclass (None for aggregates)
    data: str  # where the data is / what will be generated
    generate: bool = False  # synthetic scenes to render first
    data_id: str = ""  # which data the numbers come from: part of the result identity
    notes: list[str] = field(default_factory=list)  # needs worth knowing (GPU, simulator)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def config_hash(self) -> str:
        """Protocol fields of the config + the data: equal hashes are comparable numbers."""
        return config_hash(self.config, self.data_id)

    def protocol_params(self) -> dict[str, Any]:
        params = {f"protocol.{k}": v for k, v in self.meta.notes.items()}
        if self.config is not None:
            params.update({f"protocol.{k}": v for k, v in flatten(self.config).items()})
        return params


@dataclass
class Plan:
    cfg: RunConfig
    encoders: list[str]  # canonical names
    prerequisites: list[Any]  # bench.encoders.Prerequisite
    tasks: list[TaskPlan]
    aggregates: list[TaskPlan]
    skipped: list[tuple[str, str]]  # (task, why)
    blocked: list[tuple[str, str]] = field(default_factory=list)  # (encoder or task, what is missing and how to get it)

    def features_status(self, encoder: str, task: TaskPlan) -> str:
        if any(p.encoder == encoder for p in self.prerequisites):
            return "extract (after training)"
        manifest = feature_manifest(encoder, self.cfg.weights.get(encoder), task, self.cfg.seed)
        if not manifest.exists():
            return "extract"
        entries = json.loads(manifest.read_text())  # relative to the cache root (a copied BENCH_HOME keeps them)
        root = cache_root() / "features"
        present = sum((root / e / "index.json").exists() for e in entries)
        return "cached" if present == len(entries) else f"partly cached ({present}/{len(entries)} splits)"

    def render(self) -> str:
        lines = [f"Plan (seed {self.cfg.seed}, synthetic preset {self.cfg.synth_preset!r}):"]
        lines.append("  encoders: " + ", ".join(self.encoders))
        for p in self.prerequisites:
            est = f", about {p.estimate_seconds / 60:.1f} min" if p.estimate_seconds else ""
            if p.ready:  # a prerequisite that cannot run is listed once, with the other BLOCKED lines
                lines.append(f"  first: {p.action} for {p.encoder} ({p.detail}{est})")
        gen = sorted({t.data for t in self.tasks if t.generate})
        for g in gen:
            lines.append(f"  generate: {g}")
        for what, why in self.blocked:
            lines.append(f"  BLOCKED: {what}: {why}")
        lines.append(f"  tasks ({len(self.tasks)}):")
        for t in self.tasks:
            status = ", ".join(f"{e}: {self.features_status(e, t)}" for e in self.encoders) \
                if Need.FEATURES in t.meta.needs else "online / no cache"
            lines.append(f"    {t.name:24} v{t.meta.version} config {t.config_hash}  [{status}]"
                         + "".join(f"\n{'':29}note: {n}" for n in t.notes))
        for a in self.aggregates:
            lines.append(f"    {a.name:24} aggregate of {len(a.config['members'])} tasks (from stored results)")
        for name, why in self.skipped:
            lines.append(f"  skip {name}: {why}")
        lines.append(f"  runs: {len(self.encoders) * len(self.tasks)} encoder x task pairs")
        return "\n".join(lines)


def feature_manifest(encoder: str, weights: str | None, task: TaskPlan, seed: int) -> Path:
    """Where a finished pair lists the cache entries it read, so a planner can say what is cached
    without building the encoder (keyed by encoder name + weights argument, task, config + data, seed)."""
    import hashlib

    key = hashlib.sha256(json.dumps([encoder, weights or "", task.name, task.meta.version,
                                     task.config_hash, seed]).encode()).hexdigest()[:16]
    return cache_root() / "manifests" / f"{encoder.replace('/', '_')}--{task.name}--{key}.json"


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for n in names:
        seen.setdefault(n.strip(), None)
    return list(seen)


def select(requested: list[str], preset: str) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """(tasks, aggregates, skipped): `all` = every task whose data is present here (aggregates whose
    members are selected come along); a named task must have its data; a named aggregate brings its members."""
    from tasks import TASKS, get_task, is_aggregate, task_meta

    def missing(name: str) -> str:
        """Why a task's data / expert is not here ("" when it is)."""
        meta = task_meta(name)
        ok, where = meta.data.status(preset) if meta.data else (True, "")
        return "" if ok else f"data missing — {where}"

    names = _unique(requested)
    if names == ["all"]:
        chosen, skipped, opt_in = [], [], {}
        for name in TASKS.names():
            meta = task_meta(name)
            if is_aggregate(name):
                continue
            why = missing(name)
            if meta.opt_in:  # never run by `all`; the ones that could not run anyway are named with the reason
                opt_in[meta.group] = opt_in.get(meta.group, 0) + 1
                if why:
                    skipped.append((name, f"opt-in (--tasks {meta.group}), and {why}"))
                continue
            (skipped.append((name, why)) if why else chosen.append(name))
        skipped += [(f"{count} {group} tasks", f"opt-in: run them with --tasks {group} or by name")
                    for group, count in opt_in.items()]
        aggs = [n for n in TASKS.names() if is_aggregate(n) and set(get_task(n).members) <= set(chosen)]
        return chosen, aggs, skipped
    groups = {g for g in GROUPS if g in names}
    skipped = []
    if groups:  # `--tasks robot`: every task of the group whose data is here, with the group's aggregates
        members = [n for n in TASKS.names() if task_meta(n).group in groups and not is_aggregate(n)]
        reasons = {n: why for n in members if (why := missing(n))}
        skipped = list(reasons.items())
        names = [n for n in names if n not in groups] + [n for n in members if n not in reasons]
        group_aggs = [n for n in TASKS.names() if is_aggregate(n) and task_meta(n).group in groups]
        names += [n for n in group_aggs if set(get_task(n).members) <= set(names)]
        skipped += [(n, "aggregate without all its members: " + ", ".join(m for m in get_task(n).members if m in reasons))
                    for n in group_aggs if n not in names]
    tasks, aggs = [], []
    for name in names:
        if is_aggregate(name):  # unknown names raise here, with suggestions
            aggs.append(name)
            tasks.extend(m for m in get_task(name).members if m not in tasks)
        elif name not in tasks:
            tasks.append(name)
    for name in tasks:
        meta = task_meta(name)
        if meta.data is not None and not meta.synthetic:
            meta.data.prepare(progress=False)  # missing real data raises here, before any work
    return tasks, aggs, skipped


def make_plan(cfg: RunConfig) -> Plan:
    from bench.encoders import check_encoder_name, encoder_prerequisite
    from tasks import TASKS, get_task, task_meta

    encoders = _unique([check_encoder_name(e) for e in cfg.encoders])
    weights = {}
    for name, path in cfg.weights.items():
        canonical = check_encoder_name(name)
        if canonical not in encoders:
            raise BenchError(f"--weights {name}=...: {name} is not one of the encoders of this run ({', '.join(encoders)})")
        weights[canonical] = path
    cfg.weights = weights
    for name in cfg.task_config:
        TASKS.entry(name)  # an override for an unknown task raises with suggestions
    names, agg_names, skipped = select(cfg.tasks, cfg.synth_preset)
    if not names:
        raise BenchError("no task to run: " + (", ".join(f"{n} ({r})" for n, r in skipped) or "none selected"))
    unused = sorted(set(cfg.task_config) - set(names))
    if unused:
        raise BenchError(f"--set/--config for tasks that are not in this run: {', '.join(unused)}")
    plans = []
    for name in names:
        meta, task = task_meta(name), get_task(name)
        config = resolve(task.default_config(), cfg.task_config.get(name, {}), where=f"config of {name}")
        task.check_config(config)
        data, generate, data_id = "", False, ""
        if meta.data is not None:
            _, data = meta.data.status(cfg.synth_preset)
            if meta.synthetic:
                from bench.data.synth.pipeline import VERSION

                data_id = f"synthetic:{cfg.synth_preset}:v{VERSION}:seed0"
                generate = not meta.data.generated(cfg.synth_preset)
                if generate:
                    data = f"synthetic scenes, preset {cfg.synth_preset!r} (rendered once, shared by every synthetic task)"
            else:
                data_id = f"{meta.data.name}:{meta.data.root()}"
        plans.append(TaskPlan(meta, config, data, generate, data_id, needs_notes(meta)))
    aggs = []
    for n in agg_names:
        agg = get_task(n)
        for m in agg.members:
            member = task_meta(m)
            metric = member.metric(agg.metric or member.headline)
            if metric.higher_is_better != agg.meta.metric(agg.meta.headline).higher_is_better:
                raise BenchError(f"aggregate {n}: member {m}'s {metric.name} has the other direction")
        aggs.append(TaskPlan(task_meta(n), {"members": list(agg.members)}, "stored results"))
    prereqs = [p for e in encoders
               if (p := encoder_prerequisite(e, weights.get(e), preset=cfg.sb_preset, progress=cfg.progress)) is not None]
    blocked = [(p.encoder, p.reason.strip() or p.detail) for p in prereqs if not p.ready]
    blocked += [(e, why) for e in encoders if (why := missing_weights(e, weights.get(e)))]
    blocked += [(t.name, why) for t in plans if (why := missing_needs(t.meta))]
    return Plan(cfg, encoders, prereqs, plans, aggs, skipped, blocked)


def missing_weights(encoder: str, weights: str | None) -> str:
    """Why a base encoder cannot load here ("" when it can): checked before any data is generated."""
    from bench.encoders import encoder_card, self_pretrainer
    from bench.encoders.naming import parse_encoder_name
    from bench.encoders.weights import MissingWeightsError, find_weights

    if weights:
        return "" if Path(weights).is_file() else f"--weights {weights}: no such file"
    if parse_encoder_name(encoder).variant or self_pretrainer(encoder):  # their prerequisite says what is missing
        return ""
    card = encoder_card(encoder)
    if card.random_init:
        return ""
    try:
        find_weights(card)
    except MissingWeightsError as exc:
        return str(exc)
    return ""


def missing_needs(meta: TaskMeta) -> str:
    """What a task needs that this machine lacks (a simulator package), "" when nothing is missing."""
    import importlib.util

    if Need.SIMULATOR in meta.needs and importlib.util.find_spec("mujoco") is None:
        return "needs the MuJoCo simulator: `pip install mujoco` (scripts/setup.sh installs it)"
    return ""


def needs_notes(meta: TaskMeta) -> list[str]:
    import torch

    notes = []
    if Need.GPU in meta.needs:
        if not torch.cuda.is_available():
            notes.append("made for a GPU; no GPU here, so it runs (slowly) on the CPU")
    if Need.OWN_PROCESS in meta.needs:
        notes.append("runs in its own process")
    if Need.LLM in meta.needs:
        notes.append("needs an LLM: the task checks for its weights when it starts")
    return notes


__all__ = ["Plan", "RunConfig", "TaskPlan", "feature_manifest", "make_plan", "select"]
