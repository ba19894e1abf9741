"""What a suite aggregate's result is made of: the exact member results it averages.

An aggregate (e.g. `cortexbench-metaworld`, the mean of its five tasks) has no config of its own, so
its identity is its members': the task version and config hash of every member result it averaged.
The mean of members run with `--set ...protocol=paper` is then another result than the mean of the
`protocol=small` runs (both stay in the store, each its own column), and a rerun over the same
member results reuses the stored aggregate instead of recording it again. Its params name each
member's config hash and run, and the members' `protocol.*` knobs: one value where they agree,
``a|b`` (every value, sorted) where they do not, so a mixed-variant mean never reads as one variant.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from bench.config import config_hash
from bench.results import ResultRecord


def pick_members(members: Iterable[str], encoder: str, seed: int, records: Iterable[ResultRecord],
                 planned: Mapping[str, str], stored: Callable[[list[str]], Iterable[ResultRecord]]
                 ) -> dict[str, ResultRecord]:
    """member -> the result to average: this run's record of the member (the config this run
    planned for it, `planned[member]` = config hash), else the newest stored one of that config
    (any config when the member is not planned). Other encoders, seeds and weights never count."""
    members = list(members)
    records = [r for r in records if r.kind == "task" and r.encoder == encoder and r.seed == seed]
    weights = {r.weights_id for r in records}

    def fits(r: ResultRecord) -> bool:
        return r.task in members and (r.task not in planned or r.config_hash == planned[r.task]) \
            and r.seed == seed and r.kind == "task" and (not weights or r.weights_id in weights)

    chosen: dict[str, ResultRecord] = {}
    for r in records:  # oldest first: the last fitting record of a member wins
        if fits(r):
            chosen[r.task] = r
    missing = [m for m in members if m not in chosen]
    if missing:
        for r in sorted(stored(missing), key=lambda r: (r.start_time, r.run_id)):
            if r.task in missing and fits(r):
                chosen[r.task] = r
    return chosen


def aggregate_config(name: str, members: Mapping[str, ResultRecord]) -> dict[str, Any]:
    """What the aggregate's config hash covers: its members and, per member, the result it averaged."""
    return {"aggregate": name,
            "members": {m: {"task_version": int(r.task_version), "config_hash": r.config_hash}
                        for m, r in sorted(members.items())}}


def aggregate_hash(name: str, members: Mapping[str, ResultRecord]) -> str:
    return config_hash(aggregate_config(name, members))


def member_params(members: Mapping[str, ResultRecord], note_keys: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """`member.<task>.config_hash` / `.run_id` per member, and the members' protocol knobs
    (`protocol.<knob>`: the shared value, or every value joined by ``|``). Descriptive notes
    (`note_keys[task]`, the member's `TaskMeta.notes`) are left to the members' own runs."""
    out: dict[str, str] = {}
    knobs: dict[str, set[str]] = {}
    for m, r in sorted(members.items()):
        out[f"member.{m}.config_hash"] = r.config_hash
        out[f"member.{m}.run_id"] = r.run_id
        notes = {f"protocol.{k}" for k in note_keys.get(m, ())}
        for k, v in r.params.items():
            if k.startswith("protocol.") and k not in notes:
                knobs.setdefault(k, set()).add(str(v))
    for k, values in sorted(knobs.items()):
        out[k] = "|".join(sorted(values))
    return out


def same_members(stored: ResultRecord, members: Mapping[str, ResultRecord]) -> bool:
    """Was `stored` (an aggregate record) computed from exactly these member runs?"""
    return all(stored.params.get(f"member.{m}.run_id") == r.run_id for m, r in members.items())


__all__ = ["aggregate_config", "aggregate_hash", "member_params", "pick_members", "same_members"]
