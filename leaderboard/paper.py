"""The paper's reported numbers and the mappings from its names to ours, loaded from package data.

Everything here is data (`leaderboard/data/*.csv`) so that a renamed zoo encoder or task is a
one-line CSV edit, never a code change:

- `paper_tables.csv`: every number of the paper's tables 1-5, 8, 9, 20 and of the workshop version's
  tables 1-3, as reported (with its std where the paper gives one, and its metric direction). The
  paper is inconsistent in one place (OpenCLIP+SB CortexBench average: 70.5 in Table 4, 72.9 in
  Table 8); both rows are kept as reported and carry a `note`.
- `encoder_names.csv`: paper row name -> our zoo name (+ aliases tried in order).
- `task_map.csv`: paper (task, metric) -> our (task, metric), its task group and a short label.
  A catalogued task (`tasks.catalog()`, metadata only) whose `paper_task` names a paper task takes
  precedence over the CSV's task name.
- `paper_table_titles.csv`: table keys (`1`..`20`, `w1`..`w3` for the workshop tables) and titles.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

from leaderboard.grid import sb_base, split_name, task_catalog

WORKSHOP_PREFIX = "workshop"


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("leaderboard").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(text.splitlines())]


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes", "higher"):
        return True
    if text.lower() in ("false", "0", "no", "lower"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def table_key(source: str, table: str) -> str:
    """`5` for the paper's Table 5, `w2` for the workshop version's Table 2."""
    return f"w{table}" if source.lower().startswith(WORKSHOP_PREFIX) else str(table)


@dataclass(frozen=True)
class PaperValue:
    source: str
    table: str  # key: "1".."20" or "w1".."w3"
    encoder: str  # the paper's row name
    task: str  # the paper's task name
    metric: str  # the paper's metric name
    value: float
    std: float | None
    higher_is_better: bool
    decimals: int  # as printed in the paper
    note: str = ""


@dataclass(frozen=True)
class EncoderName:
    paper: str
    zoo: str  # "" = no zoo encoder (e.g. the SimpleFT baselines)
    aliases: tuple[str, ...] = ()
    note: str = ""

    @property
    def candidates(self) -> tuple[str, ...]:
        return ((self.zoo,) if self.zoo else ()) + self.aliases


@dataclass(frozen=True)
class TaskName:
    paper_task: str
    paper_metric: str
    task: str  # our task name (the registry's `paper_task` link wins, see `resolve_task`)
    metric: str  # our metric name
    group: str
    label: str
    headline: bool  # the column a leaderboard shows for this task


@dataclass(frozen=True)
class PaperTable:
    key: str
    source: str
    number: str
    title: str
    encoders: tuple[str, ...]  # row order as in the paper
    columns: tuple[tuple[str, str], ...]  # (paper task, paper metric), column order as in the paper
    values: dict[tuple[str, str, str], PaperValue] = field(hash=False, compare=False)

    def get(self, encoder: str, task: str, metric: str) -> PaperValue | None:
        return self.values.get((encoder, task, metric))


@lru_cache(maxsize=1)
def paper_values() -> tuple[PaperValue, ...]:
    out = []
    for r in _rows("paper_tables.csv"):
        out.append(PaperValue(
            source=r["source"], table=table_key(r["source"], r["table"]), encoder=r["encoder"], task=r["task"],
            metric=r["metric"], value=float(r["value"]), std=float(r["std"]) if r["std"] else None,
            higher_is_better=_bool(r["higher_is_better"]), decimals=_decimals(r["value"]), note=r.get("note", "")))
    return tuple(out)


@lru_cache(maxsize=1)
def paper_tables() -> dict[str, PaperTable]:
    titles = {r["key"]: r for r in _rows("paper_table_titles.csv")}
    grouped: dict[str, list[PaperValue]] = {}
    for v in paper_values():
        grouped.setdefault(v.table, []).append(v)
    tables = {}
    for key, values in grouped.items():
        meta = titles.get(key, {})
        tables[key] = PaperTable(
            key=key, source=values[0].source, number=key.lstrip("w"),
            title=meta.get("title") or f"Table {key}",
            encoders=tuple(dict.fromkeys(v.encoder for v in values)),
            columns=tuple(dict.fromkeys((v.task, v.metric) for v in values)),
            values={(v.encoder, v.task, v.metric): v for v in values})
    return tables


def table_keys() -> list[str]:
    """Paper tables first (numeric order), then the workshop tables."""
    return sorted(paper_tables(), key=lambda k: (k.startswith("w"), int(k.lstrip("w"))))


def get_table(key: str | int) -> PaperTable:
    key = str(key).strip().lower().replace("workshop-", "w").replace("workshop", "w")
    tables = paper_tables()
    if key not in tables:
        raise KeyError(f"no paper table {key!r}; known: {', '.join(table_keys())}")
    return tables[key]


@lru_cache(maxsize=1)
def encoder_names() -> dict[str, EncoderName]:
    out = {}
    for r in _rows("encoder_names.csv"):
        aliases = tuple(a.strip() for a in r.get("aliases", "").split("|") if a.strip())
        out[r["paper_encoder"]] = EncoderName(r["paper_encoder"], r["zoo_name"], aliases, r.get("note", ""))
    return out


@lru_cache(maxsize=1)
def task_names() -> dict[tuple[str, str], TaskName]:
    return {(r["paper_task"], r["paper_metric"]): TaskName(
        r["paper_task"], r["paper_metric"], r["task"], r["metric"], r["group"], r["label"], _bool(r["headline"]))
        for r in _rows("task_map.csv")}


def zoo_candidates(paper_encoder: str) -> tuple[str, ...]:
    """Our zoo names for a paper row (first = canonical); () when the row has no zoo encoder."""
    entry = encoder_names().get(paper_encoder)
    if entry is not None:
        return entry.candidates
    # An unmapped row still gets a guess, so a new paper row is never silently dropped.
    base, variant, tag = split_name(paper_encoder)
    return (base.lower() + (f"+{variant}" + (f"-{tag}" if tag else "") if variant else ""),)


def resolve_task(paper_task: str, paper_metric: str, catalog: Mapping[str, Any] | None = None) -> TaskName:
    """Our (task, metric, group, label) for a paper column.

    A catalogued task (`TaskMeta`) that declares `paper_task=<paper_task>` wins over the CSV's task
    name; the CSV's metric is kept when that task has it, else the task's headline stands in for the
    paper's headline metric (and a paper metric we do not compute keeps its own name).
    """
    catalog = task_catalog() if catalog is None else catalog
    mapped = task_names().get((paper_task, paper_metric)) or TaskName(
        paper_task, paper_metric, paper_task, paper_metric, "other", paper_task, True)
    meta = next((t for t in catalog.values() if getattr(t, "paper_task", None) == paper_task), None)
    if meta is None:
        meta = catalog.get(mapped.task)
    if meta is None:
        return mapped
    names = {m.name for m in meta.metrics}
    metric = mapped.metric
    if metric not in names:
        lower = {n.lower(): n for n in names}
        metric = lower.get(metric.lower()) or (meta.headline if mapped.headline else metric)
    return TaskName(paper_task, paper_metric, meta.name, metric, meta.group, mapped.label, mapped.headline)


__all__ = ["EncoderName", "PaperTable", "PaperValue", "TaskName", "encoder_names", "get_table", "paper_tables",
           "paper_values", "resolve_task", "sb_base", "table_keys", "task_names", "zoo_candidates"]
