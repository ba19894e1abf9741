"""Typed protocol configs: a task's dataclass defaults <- `--config run.yaml` <- `--set TASK.key=value`.

The resolved config is what runs: it is saved with the run (config.yaml), its flattened fields are
the run's `protocol.*` params, and its hash is part of the result's identity. Environment
variables never change a protocol; they only say where things are.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from bench.errors import BenchError
from bench.registry import did_you_mean


class ConfigError(BenchError):
    """A config file or override that names an unknown key or a value of the wrong type."""


def parse_sets(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """`TASK.key.sub=value` -> {TASK: {"key.sub": value}} (values parsed as YAML scalars / lists)."""
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        task, dot, path = key.strip().partition(".")
        if not sep or not dot or not path or not task:
            raise ConfigError(f"--set {item!r}: expected TASK.key=value (e.g. nyud-depth-linear.train.iterations=200)")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: cannot parse the value: {exc}") from None
        out.setdefault(task, {})[path] = value
    return out


def load_run_file(path: str | Path) -> dict[str, Any]:
    """A run file: `encoders`, `tasks`, `seed`, ... and `config: {TASK: {key: value}}`."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: expected a mapping at the top level")
    allowed = {"encoders", "tasks", "seed", "device", "batch_size", "weights", "synth_preset", "sb_preset", "config"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"config file {p}: unknown keys {unknown} (allowed: {sorted(allowed)})")
    return data


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _complete_keys(default: Any, layer: Mapping[str, Any]) -> dict[str, Any]:
    """A key that names no field but is the unique last part of one (`iterations` for
    `train.iterations`) means that field; anything else is left for the merge to refuse."""
    known = list(flatten(default))
    out: dict[str, Any] = {}
    for key, value in flatten(layer).items():
        if key not in known and not any(k.startswith(key + ".") for k in known):
            matches = [k for k in known if k.endswith("." + key)]
            key = matches[0] if len(matches) == 1 else key
        out[key] = value
    return out


def resolve(default: Any, *layers: Mapping[str, Any], where: str = "config") -> Any:
    """`default` (a dataclass instance) with each layer (nested or dotted keys) merged in, type-checked."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not layers or not any(layers):
        return default
    base = OmegaConf.structured(default)
    OmegaConf.set_readonly(base, False)
    merged = base
    for layer in layers:
        if not layer:
            continue
        nested = _nest(_complete_keys(default, layer))
        try:
            merged = OmegaConf.merge(merged, OmegaConf.create(nested))
        except OmegaConfBaseException as exc:
            key = getattr(exc, "full_key", None) or ""
            known = sorted(flatten(default))
            hint = [] if key in known else did_you_mean(str(key), known)
            raise ConfigError(f"{where}: {str(exc).splitlines()[0]}"
                              + (f" (key {key!r}; did you mean: {', '.join(hint)}?)" if hint else f" (key {key!r})")
                              ) from None
    try:
        cfg = OmegaConf.to_object(merged)
    except (OmegaConfBaseException, ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return cfg


RUNTIME = {"runtime": True}  # field(metadata=RUNTIME): how fast, not what is computed; not in the identity


def flatten(cfg: Any, prefix: str = "", *, runtime: bool = True) -> dict[str, Any]:
    """Dotted keys -> leaf values of a (nested) dataclass or mapping: the run's `protocol.*` params.
    `runtime=False` leaves out the fields marked `metadata=RUNTIME` (what the identity hashes)."""
    if dataclasses.is_dataclass(cfg):
        items = [(f.name, getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
                 if runtime or not f.metadata.get("runtime")]
    else:
        items = list(cfg.items())
    out: dict[str, Any] = {}
    for k, v in items:
        key = f"{prefix}{k}"
        if dataclasses.is_dataclass(v) or isinstance(v, Mapping):
            out.update(flatten(v, key + ".", runtime=runtime))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def config_hash(cfg: Any, data_id: str = "") -> str:
    """Hash of what a result depends on: the protocol fields of the config and the data it ran on."""
    if cfg is None and not data_id:
        return ""
    fields = flatten(cfg, runtime=False) if cfg is not None else {}
    text = json.dumps({"config": fields, "data": data_id}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def to_yaml(cfg: Any) -> str:
    import yaml

    if cfg is None:
        return "{}\n"
    return yaml.safe_dump(json.loads(json.dumps(dataclasses.asdict(cfg), default=str)), sort_keys=False)


__all__ = ["RUNTIME", "ConfigError", "config_hash", "flatten", "load_run_file", "parse_sets", "resolve", "to_yaml"]
