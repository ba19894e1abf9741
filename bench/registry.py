"""A small generic registry: named entries, lazily loaded, with did-you-mean errors.

Entries are registered either by decorating a factory or by a "module:attr" string that is only
imported when the entry is first used, so `bench list` stays fast and optional dependencies are
only needed by the entries that use them.

An *alias* is a second name for one entry (`reg.alias("dinov3", "dinov3-vit7b16")`): `entry()` and
`get()` resolve it, `canonical()` maps it to the entry's own name, and `names()` / `entries()` list
each entry once, under its canonical name, so caches and result tables keyed by the name never
double. This module imports nothing heavy (`bench.encoders.naming` relies on it).
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name no registry entry matches; carries the closest matches."""

    def __init__(self, kind: str, name: str, suggestions: list[str], known: list[str], listing: str | None = None):
        self.kind, self.name, self.suggestions, self.known = kind, name, suggestions, known
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        listing = listing or f"`bench list {kind}s` shows all {len(known)}."
        super().__init__(f"unknown {kind} {name!r}.{hint} ({listing})")

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return self.args[0]


def did_you_mean(name: str, candidates: list[str], n: int = 5) -> list[str]:
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    prefix = [c for c in candidates if c.startswith(name.split("+")[0].split("-")[0]) and c not in close]
    return (close + prefix)[:n]


@dataclass
class Entry(Generic[T]):
    name: str
    target: T | str
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> T:
        if isinstance(self.target, str):
            module, _, attr = self.target.partition(":")
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            self.target = obj
        return self.target


class Registry(Generic[T]):
    def __init__(self, kind: str, discover: Callable[[], None] | None = None):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}  # alias -> canonical name
        self._alias_meta: dict[str, dict[str, Any]] = {}
        self._discover = discover
        self._discovered = False

    def register(self, name: str, target: T | str | None = None, **meta: Any):
        """Register `target` under `name`; without a target, acts as a decorator."""
        if target is not None:
            self._add(name, target, meta)
            return target

        def deco(obj: T) -> T:
            self._add(name, obj, meta)
            return obj

        return deco

    def _add(self, name: str, target: T | str, meta: dict[str, Any]) -> None:
        if name in self._entries or name in self._aliases:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, target, meta)

    def alias(self, alias: str, target: str, **meta: Any) -> None:
        """Make `alias` a second name of the registered entry `target` (an alias of an alias resolves
        to the same entry). `meta` describes the alias itself (e.g. ``note="the paper's baseline"``)."""
        if alias in self._entries or alias in self._aliases:
            raise ValueError(f"{self.kind} {alias!r} is registered twice")
        target = self._aliases.get(target, target)
        if target not in self._entries:
            raise ValueError(f"{self.kind} alias {alias!r}: target {target!r} is not registered")
        self._aliases[alias] = target
        self._alias_meta[alias] = dict(meta)

    def _ensure(self) -> None:
        if not self._discovered and self._discover is not None:
            self._discovered = True
            self._discover()

    def canonical(self, name: str) -> str:
        """The entry's own name for `name` (itself, or the target of an alias); `UnknownNameError` else."""
        self._ensure()
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        known = sorted(self._entries)
        raise UnknownNameError(self.kind, name, did_you_mean(name, known + sorted(self._aliases)), known)

    def entry(self, name: str) -> Entry[T]:
        return self._entries[self.canonical(name)]

    def get(self, name: str) -> T:
        return self.entry(name).load()

    def __contains__(self, name: str) -> bool:
        self._ensure()
        return name in self._entries or name in self._aliases

    def names(self, *, aliases: bool = False) -> list[str]:
        """Canonical names in registration order (with ``aliases=True``: the aliases after them)."""
        self._ensure()
        return list(self._entries) + (list(self._aliases) if aliases else [])

    def entries(self) -> Iterator[Entry[T]]:
        """Each entry once (aliases are not entries)."""
        self._ensure()
        return iter(list(self._entries.values()))

    def aliases(self, name: str | None = None) -> dict[str, str]:
        """{alias: canonical name}, all of them or only those of the entry `name`."""
        self._ensure()
        if name is None:
            return dict(self._aliases)
        target = self.canonical(name)
        return {a: t for a, t in self._aliases.items() if t == target}

    def alias_meta(self, alias: str) -> dict[str, Any]:
        self._ensure()
        return dict(self._alias_meta.get(alias, {}))


def import_submodules(package: str, entry_point_group: str | None = None) -> None:
    """Import every module of `package` (each registers itself) and any plug-in entry points."""
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
    if entry_point_group:
        from importlib.metadata import entry_points

        for ep in entry_points(group=entry_point_group):
            ep.load()
