"""The one reader of the MLflow store: finished runs back as `ResultRecord`s (bench/results.py).

    records = read_records()                   # newest record per identity, task + aggregate runs
    records.skipped                            # malformed runs left out (never a crash)
    df = read_results(all_runs=True)           # tidy, one row per metric, columns RESULT_COLUMNS

One paginated `search_runs` over the experiment, FINISHED runs only; each run is rebuilt from its
tags, params and metrics alone (no artifact download). Runs of older stores carry only the
`bench.dir.<metric>` tags: they are read with defaults (role "score", unit "", task version 1,
config hash "", weights id from the params). A run whose record cannot be rebuilt (no encoder or task
param, a seed such as "0.5", a non-numeric task version, a direction other than higher/lower) is
skipped and counted, with its reason, in `records.skipped` / `records.problems`.

Identity (encoder, weights_id, task, task_version, config_hash, seed): by default only the newest
record (start time) of each identity is kept, so a rerun replaces, never duplicates; `all_runs=True`
keeps every run. Light: imports MLflow and pandas only when called, never torch.
"""
from __future__ import annotations

from pathlib import Path

import re
from typing import Any, Iterable, Sequence

from bench.results import (DIR_TAG, GROUP_TAG, HEADLINE_TAG, KIND_TAG, PROTOCOL_TAG, RESULT_COLUMNS, ROLE_TAG,
                           UNIT_TAG, VERSION_TAG, MetricValue, ResultRecord)

PARENT_TAG = "mlflow.parentRunId"
ROLES = ("score", "reference", "diagnostic")
_INT = re.compile(r"^[+-]?\d+$")
PAGE_SIZE = 1000


class MalformedRun(ValueError):
    """A finished run whose record cannot be rebuilt; skipped by the reader, never fatal."""


class Records(list):
    """A list of `ResultRecord`s that also says what was left out: `skipped` (count) and `problems`
    ((run id, reason) pairs)."""

    def __init__(self, records: Iterable[ResultRecord] = (), problems: Sequence[tuple[str, str]] = ()):
        super().__init__(records)
        self.problems: list[tuple[str, str]] = list(problems)

    @property
    def skipped(self) -> int:
        return len(self.problems)

    def skipped_message(self) -> str:
        """`skipped N malformed run(s) (first: RUN: reason)`, or "" when nothing was skipped."""
        if not self.problems:
            return ""
        rid, why = self.problems[0]
        return f"skipped {self.skipped} malformed run(s) (first: {rid}: {why})"


def _int(text: Any, what: str) -> int:
    s = str(text).strip()
    if not _INT.match(s):
        raise MalformedRun(f"{what} {text!r} is not an integer")
    return int(s)


def canonical_encoder(name: str) -> str:
    """Aliases are aliases: `dinov3` is `dinov3-vit7b16` (the runner records canonical names; older
    stores hold aliases); a name the zoo does not know is kept as written. The registry is light."""
    try:
        from bench.encoders import resolve_name

        return str(resolve_name(name))
    except Exception:  # noqa: BLE001 - unknown or plug-in names stay as stored
        return name


def record_from_run(run: Any) -> ResultRecord:
    """Rebuild one record from an MLflow run (tags + params + metrics); `MalformedRun` if it cannot be."""
    p, t = dict(run.data.params), dict(run.data.tags)
    encoder, task = (p.get("encoder") or "").strip(), (p.get("task") or "").strip()
    if not encoder or not task:
        raise MalformedRun("no encoder or task param")
    seed = _int(p["seed"], "seed") if "seed" in p else 0
    version_text = t.get(VERSION_TAG, p.get("task_version"))
    version = 1 if version_text in (None, "") else _int(version_text, "task version")
    if version < 1:
        raise MalformedRun(f"task version {version} < 1")
    metrics: dict[str, MetricValue] = {}
    for name, value in run.data.metrics.items():
        direction = t.get(DIR_TAG + name)
        if direction is None:  # bookkeeping (wall_seconds), not a result
            continue
        if direction not in ("higher", "lower"):
            raise MalformedRun(f"metric {name}: direction {direction!r} is neither 'higher' nor 'lower'")
        role = t.get(ROLE_TAG + name) or "score"
        if role not in ROLES:
            raise MalformedRun(f"metric {name}: role {role!r} is not one of {ROLES}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise MalformedRun(f"metric {name}: value {value!r} is not a number") from None
        metrics[name] = MetricValue(value, direction == "higher", role, t.get(UNIT_TAG + name, ""))
    if not metrics:
        raise MalformedRun("no metric with a direction tag")
    headline = t.get(HEADLINE_TAG, "")
    if headline and headline not in metrics:
        headline = ""  # the readers fall back to the task metadata
    return ResultRecord(
        encoder=encoder, task=task, seed=seed, metrics=metrics, headline=headline,
        encoder_label=p.get("encoder_label") or encoder, weights_id=p.get("weights_id", ""), task_version=version,
        group=t.get(GROUP_TAG) or p.get("group", ""), protocol=t.get(PROTOCOL_TAG, ""),
        config_hash=p.get("config_hash", ""), kind=t.get(KIND_TAG, "task"), params=p, run_id=run.info.run_id,
        parent_run_id=t.get(PARENT_TAG, ""), start_time=int(run.info.start_time or 0),
        status=run.info.status or "FINISHED")


def _quote(text: str) -> str:
    return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _filter(kinds: Sequence[str], encoders: Sequence[str] | None, tasks: Sequence[str] | None) -> str:
    """The search filter; MLflow has no IN for tags and params, so only single values are pushed down."""
    parts = ["attributes.status = 'FINISHED'"]
    if len(kinds) == 1:
        parts.append(f"tags.`{KIND_TAG}` = {_quote(kinds[0])}")
    if encoders is not None and len(encoders) == 1:
        parts.append(f"params.encoder = {_quote(encoders[0])}")
    if tasks is not None and len(tasks) == 1:
        parts.append(f"params.task = {_quote(tasks[0])}")
    return " and ".join(parts)


def iter_runs(filter_string: str) -> Iterable[Any]:
    """Every run of the benchmark's experiment matching `filter_string` (one paginated search)."""
    from bench.tracking import EXPERIMENT

    from bench.tracking import open_client

    client = open_client()
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return
    token = None
    while True:
        page = client.search_runs([exp.experiment_id], filter_string=filter_string, max_results=PAGE_SIZE,
                                  page_token=token)
        yield from page
        token = page.token
        if not token:
            break


def latest_per_identity(records: Iterable[ResultRecord]) -> list[ResultRecord]:
    """The newest record (start time, then run id) of each identity, in first-seen order."""
    best: dict[tuple, ResultRecord] = {}
    for r in records:
        cur = best.get(r.identity)
        if cur is None or (r.start_time, r.run_id) > (cur.start_time, cur.run_id):
            best[r.identity] = r
    return list(best.values())


def read_records(*, kinds: Sequence[str] = ("task", "aggregate"), encoders: Iterable[str] | None = None,
                 tasks: Iterable[str] | None = None, all_runs: bool = False) -> Records:
    """Finished result runs as records (newest per identity unless `all_runs`), oldest first; the
    returned list's `skipped` / `problems` say which runs were malformed and why."""
    kinds = tuple(kinds)
    # a filter matches a name as stored and as canonical (older stores recorded aliases such as `dinov3`)
    encoders = None if encoders is None else list(dict.fromkeys(
        [n for e in encoders for n in (e, canonical_encoder(e))]))
    tasks = None if tasks is None else list(dict.fromkeys(tasks))
    out, problems = [], []
    # the encoder filter is applied after canonicalising stored names (older stores hold aliases)
    for run in iter_runs(_filter(kinds, None, tasks)):
        if run.data.tags.get(KIND_TAG) not in kinds:
            continue
        try:
            rec = record_from_run(run)
        except MalformedRun as exc:
            problems.append((run.info.run_id, str(exc)))
            continue
        if (encoders is None or rec.encoder in encoders or canonical_encoder(rec.encoder) in encoders) and \
                (tasks is None or rec.task in tasks):
            out.append(rec)
    if not all_runs:
        out = latest_per_identity(out)
    out.sort(key=lambda r: (r.start_time, r.run_id))
    return Records(out, problems)


def read_breakdown(record: ResultRecord) -> dict[str, dict[str, float]]:
    """A record's breakdown (per class / environment / seed), from its run's `breakdown.json`
    artifact: fetched on demand, one download per record, so listing results stays one search."""
    import json
    import tempfile

    from bench.tracking import open_client

    client = open_client()
    names = {a.path for a in client.list_artifacts(record.run_id)}
    if "breakdown.json" not in names:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(record.run_id, "breakdown.json", tmp)
        return json.loads(Path(path).read_text())


ITEMS_FILE = "items.npz"
_ITEMS_META = "__items_meta__"


def write_items(path: str | Path, items: dict) -> Path:
    """Per-item scores (`bench.task.ItemScores` by metric) as one npz, atomically: an array per
    metric plus a JSON entry with each one's statistic and scale (no pickles: read with
    allow_pickle=False)."""
    import json

    import numpy as np

    from bench.io import atomic_path

    path = Path(path)
    meta = {name: {"statistic": it.statistic, "scale": float(it.scale)} for name, it in items.items()}
    arrays = {f"m{i}": np.asarray(it.values, dtype=np.float64) for i, it in enumerate(items.values())}
    meta = {"metrics": meta, "arrays": {name: f"m{i}" for i, name in enumerate(items)}}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays, **{_ITEMS_META: np.array(json.dumps(meta))})
    return path


def load_items(path: str | Path) -> dict:
    """`write_items`' file back as {metric: ItemScores}."""
    import json

    import numpy as np

    from bench.task import ItemScores

    with np.load(Path(path), allow_pickle=False) as z:
        meta = json.loads(str(z[_ITEMS_META]))
        return {name: ItemScores(z[meta["arrays"][name]], m["statistic"], m["scale"])
                for name, m in meta["metrics"].items()}


def read_items(record: ResultRecord) -> dict:
    """A record's per-item scores ({metric: ItemScores}; {} for runs that stored none, such as
    aggregates and older runs), from its run's `items.npz` artifact, fetched on demand and kept in
    BENCH_HOME/cache/items (a finished run's artifacts never change)."""
    import tempfile

    from bench.paths import cache_root

    if not record.run_id:
        return {}
    cached = cache_root() / "items" / f"{record.run_id}.npz"
    if cached.exists():
        return load_items(cached)
    from bench.tracking import open_client

    import os
    from urllib.parse import unquote, urlparse

    from bench.io import atomic_path

    client = open_client()
    try:
        uri = client.get_run(record.run_id).info.artifact_uri or ""
        if uri.startswith("file:"):  # a local artifact store: read the file in place (no download)
            local = Path(unquote(urlparse(uri).path)) / ITEMS_FILE
            if not local.exists():
                return {}
            data = local.read_bytes()
        else:
            if ITEMS_FILE not in {a.path for a in client.list_artifacts(record.run_id)}:
                return {}
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            with tempfile.TemporaryDirectory() as tmp:
                data = Path(client.download_artifacts(record.run_id, ITEMS_FILE, tmp)).read_bytes()
    except Exception:  # noqa: BLE001 - a run the store cannot serve has no items (never fails a report)
        return {}
    with atomic_path(cached) as out:
        out.write_bytes(data)
    return load_items(cached)


def tidy(records: Iterable[ResultRecord]):
    """Tidy DataFrame (one row per metric, columns `RESULT_COLUMNS`) of records."""
    import pandas as pd

    rows = [row for r in records for row in r.tidy_rows()]
    df = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    if not df.empty:
        df = df.sort_values(["task", "encoder", "metric", "seed", "start_time"], kind="stable")
    return df.reset_index(drop=True)


def read_results(*, kinds: Sequence[str] = ("task", "aggregate"), encoders: Iterable[str] | None = None,
                 tasks: Iterable[str] | None = None, all_runs: bool = False):
    """`read_records(...)` as a tidy DataFrame with `RESULT_COLUMNS`; `df.attrs["skipped"]` counts the
    malformed runs left out (`df.attrs["problems"]`: their run ids and reasons)."""
    records = read_records(kinds=kinds, encoders=encoders, tasks=tasks, all_runs=all_runs)
    df = tidy(records)
    df.attrs["skipped"] = records.skipped
    df.attrs["problems"] = list(records.problems)
    return df


__all__ = ["ITEMS_FILE", "MalformedRun", "Records", "iter_runs", "latest_per_identity", "load_items", "read_breakdown",
           "read_items", "read_records", "read_results", "record_from_run", "tidy", "write_items"]
