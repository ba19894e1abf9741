"""A small generic registry: named entries, lazily loaded, with did-you-mean errors.

Entries are registered either by decorating a factory or by a "module:attr" string that is only
imported when the entry is first used, so `bench list` stays fast and optional dependencies are
only needed by the entries that use them.
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

    def __init__(self, kind: str, name: str, suggestions: list[str], known: list[str]):
        self.kind, self.name, self.suggestions, self.known = kind, name, suggestions, known
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} (`bench list {kind}s` shows all {len(known)}.)")

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
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, target, meta)

    def _ensure(self) -> None:
        if not self._discovered and self._discover is not None:
            self._discovered = True
            self._discover()

    def entry(self, name: str) -> Entry[T]:
        self._ensure()
        if name not in self._entries:
            known = sorted(self._entries)
            raise UnknownNameError(self.kind, name, did_you_mean(name, known), known)
        return self._entries[name]

    def get(self, name: str) -> T:
        return self.entry(name).load()

    def __contains__(self, name: str) -> bool:
        self._ensure()
        return name in self._entries

    def names(self) -> list[str]:
        self._ensure()
        return list(self._entries)

    def entries(self) -> Iterator[Entry[T]]:
        self._ensure()
        return iter(list(self._entries.values()))


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
