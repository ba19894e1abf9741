"""One result record: what the runner produces, what the tracker stores and what every report reads.

A record's identity is (encoder, weights_id, task, task_version, config_hash, seed): only records
with equal identities but different seeds aggregate into a mean over seeds; a rerun of the same
identity replaces, never duplicates. Light on purpose (no torch, no pandas at import).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

KIND_TAG = "bench.kind"  # task | aggregate | benchmark | sb-train
DIR_TAG = "bench.dir."  # + metric name: higher | lower
ROLE_TAG = "bench.role."  # + metric name: score | reference | diagnostic
UNIT_TAG = "bench.unit."  # + metric name: "%", "m", ""
PROTOCOL_TAG = "bench.protocol"
VERSION_TAG = "bench.task_version"
GROUP_TAG = "bench.group"
HEADLINE_TAG = "bench.headline"
IDENTITY_TAG = "bench.identity"
HOST_TAG, PID_TAG = "bench.host", "bench.pid"

# Columns of the tidy table (one row per metric) that `bench results` prints and reports read.
RESULT_COLUMNS = ["encoder", "task", "metric", "value", "higher_is_better", "role", "unit", "protocol", "seed",
                  "task_version", "weights_id", "config_hash", "run_id", "parent_run_id", "start_time"]


@dataclass(frozen=True)
class MetricValue:
    value: float
    higher_is_better: bool
    role: str = "score"
    unit: str = ""


def metric_tags(name: str, higher_is_better: bool, role: str, unit: str) -> dict[str, str]:
    """The tags that make one metric readable from the store alone: direction, role, unit."""
    return {DIR_TAG + name: "higher" if higher_is_better else "lower", ROLE_TAG + name: role, UNIT_TAG + name: unit}


def identity_hash(encoder: str, weights_id: str, task: str, task_version: int, config_hash: str, seed: int) -> str:
    text = json.dumps([encoder, weights_id, task, int(task_version), config_hash, int(seed)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class ResultRecord:
    encoder: str  # canonical name
    task: str
    seed: int
    metrics: dict[str, MetricValue]
    headline: str
    encoder_label: str = ""
    weights_id: str = ""
    task_version: int = 1
    group: str = ""
    protocol: str = ""
    config_hash: str = ""
    kind: str = "task"  # task | aggregate
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    run_id: str = ""
    parent_run_id: str = ""
    start_time: int = 0
    status: str = "FINISHED"

    @property
    def identity(self) -> tuple:
        return (self.encoder, self.weights_id, self.task, self.task_version, self.config_hash, self.seed)

    @property
    def identity_hash(self) -> str:
        return identity_hash(*self.identity)

    def tidy_rows(self) -> list[dict[str, Any]]:
        return [{"encoder": self.encoder, "task": self.task, "metric": name, "value": m.value,
                 "higher_is_better": m.higher_is_better, "role": m.role, "unit": m.unit, "protocol": self.protocol,
                 "seed": self.seed, "task_version": self.task_version, "weights_id": self.weights_id,
                 "config_hash": self.config_hash, "run_id": self.run_id, "parent_run_id": self.parent_run_id,
                 "start_time": self.start_time} for name, m in self.metrics.items()]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ResultRecord":
        d = dict(d)
        d["metrics"] = {k: MetricValue(**v) for k, v in d.get("metrics", {}).items()}
        return cls(**d)

    def tags(self) -> dict[str, str]:
        """What the tracker stores as run tags, so a reader rebuilds the record from tags + params + metrics."""
        tags = {KIND_TAG: self.kind, PROTOCOL_TAG: self.protocol, VERSION_TAG: str(self.task_version),
                GROUP_TAG: self.group, HEADLINE_TAG: self.headline, IDENTITY_TAG: self.identity_hash}
        for name, m in self.metrics.items():
            tags.update(metric_tags(name, m.higher_is_better, m.role, m.unit))
        return tags


__all__ = ["DIR_TAG", "GROUP_TAG", "HEADLINE_TAG", "HOST_TAG", "IDENTITY_TAG", "KIND_TAG", "MetricValue", "PID_TAG",
           "PROTOCOL_TAG", "RESULT_COLUMNS", "ROLE_TAG", "ResultRecord", "UNIT_TAG", "VERSION_TAG", "identity_hash", "metric_tags"]
