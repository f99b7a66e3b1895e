"""Registries: name -> plug-in, one per kind of thing users add (endpoint family, test, allocation scheme).

This is the bottom layer, so the config schema can check names against what is registered without
importing the plug-ins themselves. The shipped plug-ins are found through the package's entry points
(``[project.entry-points."trialsim.<kind>"]`` in pyproject.toml), loaded on the first look-up; a user's
own plug-in registers itself with ``REGISTRY.register(name, obj)`` (usually through the kind's
decorator, e.g. :func:`trialsim.endpoints.registry.register`).
"""
from __future__ import annotations

from functools import lru_cache
from importlib.metadata import EntryPoints, entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


@lru_cache(maxsize=1)
def _entry_points() -> EntryPoints:
    """Every installed entry point, read once: each reading scans every installed package's metadata (about
    20 ms here), and the registries would otherwise read it once each."""
    return entry_points()


class Registry(Generic[T]):
    """Named plug-ins of one kind, in registration order."""

    def __init__(self, kind: str, group: str):
        self.kind = kind
        self.group = group
        self._items: dict[str, T] = {}
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for ep in _entry_points().select(group=self.group):
            ep.load()  # importing the module registers its plug-ins

    def register(self, name: str, item: T) -> T:
        if name in self._items and self._items[name] is not item and self._items[name] != item:
            raise ValueError(f"{self.kind} {name!r} is registered already")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        self._load()
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {', '.join(self._items) or 'none'}")
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def names(self) -> tuple[str, ...]:
        self._load()
        return tuple(self._items)

    def items(self):
        self._load()
        return tuple(self._items.items())


ENDPOINT_FAMILIES: Registry = Registry("endpoint family", "trialsim.endpoint_families")
TESTS: Registry = Registry("test", "trialsim.tests")
ALLOCATION_SCHEMES: Registry = Registry("allocation scheme", "trialsim.allocation_schemes")
DECISION_RULES: Registry = Registry("decision rule", "trialsim.decision_rules")
MULTIPLICITY_METHODS: Registry = Registry("multiplicity method", "trialsim.multiplicity_methods")
