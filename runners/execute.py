"""Execute a plan, then record: prerequisites (train missing +sb checkpoints), data (generate the
synthetic scenes once), then one encoder in memory at a time over every task, one MLflow child run
per (encoder, task), in its own process when the task asks for one; aggregates last, from stored
member results. Every result goes out as one `ResultRecord`."""
from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.config import to_yaml
from bench.context import EvalContext
from bench.errors import NotTrainedError
from bench.features import FeatureCache, default_num_workers, resolve_device
from bench.io import write_json
from bench.paths import bench_home
from bench.results import (GROUP_TAG, HEADLINE_TAG, KIND_TAG, PROTOCOL_TAG, VERSION_TAG, MetricValue, ResultRecord,
                           identity_hash, metric_tags)
from bench.seeding import seed_everything
from bench.task import Need, TaskMeta, TaskResult
from bench.tracking import RunHandle, Tracker, code_version
from runners.plan import Plan, TaskPlan, feature_manifest


def meta_tags(meta: TaskMeta, kind: str = "task") -> dict[str, str]:
    """A task run's tags at creation (every declared metric's direction, role and unit)."""
    tags = {KIND_TAG: kind, PROTOCOL_TAG: meta.protocol, VERSION_TAG: str(meta.version), GROUP_TAG: meta.group,
            HEADLINE_TAG: meta.headline}
    for m in meta.metrics:
        tags.update(metric_tags(m.name, m.higher_is_better, m.role, m.unit))
    return tags


def to_record(meta: TaskMeta, result: TaskResult, *, encoder: str, label: str, weights_id: str, seed: int,
              config_hash: str, run: RunHandle, parent: RunHandle | None, params: dict[str, Any],
              kind: str = "task") -> ResultRecord:
    return ResultRecord(
        encoder=encoder, task=meta.name, seed=seed, headline=meta.headline, encoder_label=label,
        weights_id=weights_id, task_version=meta.version, group=meta.group, protocol=meta.protocol,
        config_hash=config_hash, kind=kind, breakdown=result.breakdown,
        metrics={k: MetricValue(float(v), meta.metric(k).higher_is_better, meta.metric(k).role, meta.metric(k).unit)
                 for k, v in result.metrics.items()},
        params={k: str(v) for k, v in params.items()}, run_id=run.run_id, parent_run_id=parent.run_id if parent else "",
        start_time=int(time.time() * 1000))


@dataclass(frozen=True)
class EncoderInfo:
    """What records need of an encoder, kept while the model itself is freed (own-process tasks)."""

    name: str
    label: str
    backend: str
    weights_id: str
    random_init: bool

    @classmethod
    def of(cls, encoder) -> "EncoderInfo":
        return cls(encoder.name, encoder.label, encoder.backend, encoder.weights_id, encoder.random_init)


class Executor:
    def __init__(self, plan: Plan, out=None):
        self.plan, self.cfg, self.out = plan, plan.cfg, out or sys.stdout
        self.device = resolve_device(self.cfg.device)  # `RunConfig` refused cuda without a GPU
        self.workers = default_num_workers() if self.cfg.num_workers < 0 else self.cfg.num_workers
        self.cache = FeatureCache(dtype=torch.float32 if self.cfg.cache_dtype == "fp32" else torch.float16)
        self.records: list[ResultRecord] = []
        self.failures: list[tuple[str, str, str]] = []  # (encoder, task, cause): recorded, the rest ran
        self.reused = 0  # pairs skipped because their identity has a finished result

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # ------------------------------------------------------------------------------ phases
    def prepare(self) -> dict[str, Path | None]:
        """Prerequisites, then data; a plan with anything BLOCKED never gets here (`run_benchmark`)."""
        for p in self.plan.prerequisites:
            if not self.cfg.train_missing:
                raise NotTrainedError(f"{p.encoder}: {p.action} is needed first ({p.detail}); run without "
                                      "--no-train to do it now, or pass --weights FILE")
            self.say(f"[plan] {p.action} for {p.encoder} ({p.detail}) ...")
            p.run()
        roots: dict[str, Path | None] = {}
        for t in self.plan.tasks:
            roots[t.name] = t.meta.data.prepare(progress=self.cfg.progress, preset=self.cfg.synth_preset) \
                if t.meta.data is not None else None
        return roots

    def execute(self) -> list[ResultRecord]:
        from bench.encoders import load_encoder

        roots = self.prepare()
        tracker = self.make_tracker()
        dead = tracker.reap_dead_runs()
        if dead:
            self.say(f"[store] marked {len(dead)} run(s) of dead processes KILLED")
        self.done = {} if self.cfg.force else self.finished()
        resolved = {"run": {**{k: v for k, v in vars(self.cfg).items() if k != "task_config"},
                            "device": str(self.device), "num_workers": self.workers, "code_version": code_version()},
                    "tasks": {t.name: json.loads(json.dumps(t.protocol_params(), default=str)) for t in self.plan.tasks}}
        with tracker.run(f"bench run {time.strftime('%Y-%m-%d %H:%M:%S')}", tags={KIND_TAG: "benchmark"},
                         params={"encoders": ",".join(self.plan.encoders),
                                 "tasks": ",".join(t.name for t in self.plan.tasks), "seed": self.cfg.seed,
                                 "device": str(self.device), "synth_preset": self.cfg.synth_preset,
                                 "code_version": code_version()}) as parent:
            parent.log_json("config.json", resolved)
            for name in self.plan.encoders:
                seed_everything(self.cfg.seed)
                try:
                    encoder = load_encoder(name, self.cfg.weights.get(name), seed=self.cfg.seed)
                except Exception as exc:  # noqa: BLE001 - every task of this encoder fails; the others run
                    self.fail(name, [t.name for t in self.plan.tasks], exc)
                    continue
                # in-process tasks first; the encoder is freed before tasks that load it in their own process
                ordered = sorted(self.plan.tasks, key=lambda t: Need.OWN_PROCESS in t.meta.needs)
                info = EncoderInfo.of(encoder)
                for task in ordered:
                    if Need.OWN_PROCESS in task.meta.needs and encoder is not None:
                        encoder = None
                        gc.collect()
                        if torch.cuda.is_available():
                            torch.cuda.empty_cache()
                    try:
                        self.records.append(self.run_pair(tracker, parent, task, encoder or info, roots[task.name]))
                    except Exception as exc:  # noqa: BLE001 - recorded (FAILED run with its cause); the rest run
                        self.fail(info.label, [task.name], exc)
                encoder = None
                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            for agg in self.plan.aggregates:
                for name in self.plan.encoders:
                    rec = self.run_aggregate(tracker, parent, agg, name)
                    if rec is not None:
                        self.records.append(rec)
            parent.log_metrics({"features_extracted": self.cache.stats.extracted,
                                "features_reused": self.cache.stats.reused, "pairs_failed": len(self.failures),
                                "pairs_reused": self.reused})
            parent.log_json("results.json", [r.to_dict() for r in self.records])
            if self.failures:
                parent.log_json("failures.json", [{"encoder": e, "task": t, "cause": c} for e, t, c in self.failures])
        return self.records

    # ------------------------------------------------------------ where records go (sweep jobs override)
    def make_tracker(self):
        """The run store: MLflow (a sweep job without a tracking server writes record files instead)."""
        return Tracker()

    def finished(self) -> dict[str, ResultRecord]:
        """identity hash -> finished record: these pairs are reused, never rerun."""
        from bench.store import read_records

        return {r.identity_hash: r for r in read_records(kinds=("task",))}

    def fail(self, encoder: str, tasks: list[str], exc: BaseException) -> None:
        import logging
        import traceback

        cause = f"{type(exc).__name__}: {exc}".strip()
        logging.getLogger("bench.run").debug("%s", "".join(traceback.format_exception(exc)))
        for task in tasks:
            self.failures.append((encoder, task, cause))
            self.say(f"[{encoder}] {task}: FAILED — {cause.splitlines()[0]}")

    # ------------------------------------------------------------------------- one pair
    def base_params(self, task: TaskPlan, encoder) -> dict[str, Any]:
        return {"encoder": encoder.name, "encoder_label": encoder.label, "backend": encoder.backend,
                "weights_id": encoder.weights_id, "random_init": encoder.random_init, "task": task.name,
                "group": task.meta.group, "task_version": task.meta.version, "seed": self.cfg.seed,
                "config_hash": task.config_hash, "data_id": task.data_id, "code_version": code_version(),
                "device": str(self.device),
                "needs": ",".join(task.meta.needs.names()),
                **({"synth_preset": self.cfg.synth_preset} if task.meta.synthetic else {}),
                **task.protocol_params()}

    def state_root(self, task: TaskPlan, encoder) -> Path:
        return bench_home() / "state" / encoder.name.replace("/", "_") / task.name / \
            f"{task.config_hash}-seed{self.cfg.seed}-{encoder.weights_id[:16]}"

    def run_pair(self, tracker: Tracker, parent: RunHandle, task: TaskPlan, encoder, root: Path | None) -> ResultRecord:
        from tasks import get_task

        seed_everything(self.cfg.seed)
        meta = task.meta
        identity = identity_hash(encoder.name, encoder.weights_id, meta.name, meta.version, task.config_hash,
                                 self.cfg.seed)
        if identity in self.done:
            stored = self.done[identity]
            self.reused += 1
            self.say(f"[{encoder.label}] {meta.name}: done already (run {stored.run_id[:8]}, "
                     f"{meta.headline} = {stored.metrics[meta.headline].value:.3f}); --force recomputes it")
            return stored
        params = {**self.base_params(task, encoder), "data_root": str(root) if root else ""}
        self.say(f"[{encoder.label}] {meta.name} ...")
        t0 = time.perf_counter()
        self.cache.touched = []
        with tracker.run(f"{encoder.name}/{meta.name}", parent=parent, tags=meta_tags(meta), params=params) as run, \
                tempfile.TemporaryDirectory(prefix="bench-artifacts-") as artifacts:
            run.log_text("config.yaml", to_yaml(task.config))
            if Need.OWN_PROCESS in meta.needs:
                result, logged, touched = self.run_child(task, encoder, root, run, Path(artifacts))
                self.cache.touched = touched
            else:
                ctx = EvalContext(encoder, self.device, self.cfg.seed, self.cache, root=root,
                                  batch_size=self.cfg.batch_size, num_workers=self.workers,
                                  progress=self.cfg.progress, run=run, artifacts_dir=Path(artifacts),
                                  state_root=self.state_root(task, encoder))
                result = get_task(meta.name).run(ctx, task.config)
                logged = ctx.params
            result.validate(meta)
            if result.items:  # per-item scores beside the record: the reports' intervals come from them
                from bench.store import ITEMS_FILE, write_items

                write_items(Path(artifacts) / ITEMS_FILE, result.items)
            if any(Path(artifacts).iterdir()):
                run.client.log_artifacts(run.run_id, artifacts)
            record = to_record(meta, result, encoder=encoder.name, label=encoder.label, weights_id=encoder.weights_id,
                               seed=self.cfg.seed, config_hash=task.config_hash, run=run, parent=parent,
                               params={**params, **logged})
            Tracker.record(run, record)
            run.log_metrics({"wall_seconds": time.perf_counter() - t0})
        write_json(feature_manifest(encoder.name, self.cfg.weights.get(encoder.name), task, self.cfg.seed),
                   [os.path.relpath(t, self.cache.root) for t in self.cache.touched])
        head = result.metrics[meta.headline]
        self.say(f"[{encoder.label}] {meta.name}: {meta.headline} = {head:.3f} "
                 f"({meta.metric(meta.headline).direction} is better, {time.perf_counter() - t0:.1f}s)")
        return record

    def run_child(self, task: TaskPlan, encoder, root: Path | None, run: RunHandle, artifacts: Path):
        from runners.child import ChildRequest, run_in_child
        from tasks import TASKS

        request = ChildRequest(
            encoder=encoder.name, weights=self.cfg.weights.get(encoder.name), task=task.name,
            register_module=TASKS.entry(task.name).meta.get("module", "tasks"), config=task.config,
            seed=self.cfg.seed, root=str(root) if root else None, device=str(self.device),
            batch_size=self.cfg.batch_size, num_workers=self.workers, progress=self.cfg.progress, run_id=run.run_id,
            artifacts_dir=str(artifacts), state_root=str(self.state_root(task, encoder)),
            cache_root=str(self.cache.root), cache_dtype=self.cfg.cache_dtype, env={k: v for k, v in os.environ.items() if k.startswith("BENCH_")},
            record_root=getattr(run, "record_root", None))  # sweep record-file mode: the child logs into the folder
        return run_in_child(request)

    # ------------------------------------------------------------------------ aggregates
    def run_aggregate(self, tracker: Tracker, parent: RunHandle, agg: TaskPlan, encoder: str) -> ResultRecord | None:
        """The aggregate of `encoder`'s member results of this run's configs (`runners.aggregates`:
        its identity is theirs); reused when the store has it over the same member runs."""
        from bench.store import read_records
        from runners.aggregates import aggregate_hash, member_params, pick_members, same_members
        from tasks import get_task, task_meta

        task = get_task(agg.name)
        planned = {t.name: t.config_hash for t in self.plan.tasks}
        members = pick_members(task.members, encoder, self.cfg.seed, self.records, planned,
                               lambda names: read_records(kinds=("task",), encoders=[encoder], tasks=names))
        missing = [m for m in task.members if m not in members]
        if missing:
            self.say(f"[{encoder}] {agg.name}: not computed — no result yet for {', '.join(missing)}"
                     + (" under this run's config" if any(m in planned for m in missing) else ""))
            return None
        values = {m: r.metrics[task.metric or r.headline].value for m, r in members.items()}
        weights = ",".join(sorted({r.weights_id for r in members.values()}))
        chash = aggregate_hash(agg.name, members)
        label = next((r.encoder_label for r in members.values() if r.encoder_label), encoder)
        if not self.cfg.force:
            identity = identity_hash(encoder, weights, agg.name, agg.meta.version, chash, self.cfg.seed)
            stored = [r for r in read_records(kinds=("aggregate",), encoders=[encoder], tasks=[agg.name])
                      if r.identity_hash == identity and same_members(r, members)]
            if stored:
                self.say(f"[{label}] {agg.name}: done already (run {stored[-1].run_id[:8]}, same member runs); "
                         "--force recomputes it")
                return stored[-1]
        result = task.compute(values)
        params = {"encoder": encoder, "task": agg.name, "group": agg.meta.group, "task_version": agg.meta.version,
                  "seed": self.cfg.seed, "config_hash": chash, "members": ",".join(task.members),
                  "weights_id": weights, "code_version": code_version(),
                  **{f"protocol.{k}": v for k, v in agg.meta.notes.items()},
                  **member_params(members, {m: task_meta(m).notes for m in members})}
        with tracker.run(f"{encoder}/{agg.name}", parent=parent, tags=meta_tags(agg.meta, "aggregate"),
                         params=params) as run:
            record = to_record(agg.meta, result, encoder=encoder, label=label, weights_id=weights,
                               seed=self.cfg.seed, config_hash=chash, run=run, parent=parent, params=params,
                               kind="aggregate")
            Tracker.record(run, record)
        self.say(f"[{label}] {agg.name}: {agg.meta.headline} = {result.metrics[agg.meta.headline]:.3f} "
                 f"(mean of {len(task.members)} tasks)")
        return record


__all__ = ["Executor", "meta_tags", "to_record"]
