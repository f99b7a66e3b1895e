"""Registering endpoint families. Adding a family is one module and one decorator.

The shipped families register themselves when :mod:`trialsim.endpoints` is imported (found through
the package's entry points); a user's own family registers from anywhere (a notebook, a test module)::

    from trialsim.endpoints.registry import register

    @register
    class Counts(EndpointFamily):
        family: Literal["counts"] = "counts"
        ...
"""
from __future__ import annotations

from typing import TypeVar

from trialsim.endpoints.base import EndpointFamily
from trialsim.registry import ENDPOINT_FAMILIES

F = TypeVar("F", bound=type[EndpointFamily])


def register(cls: F) -> F:
    """Register an endpoint family under the default of its ``family`` field."""
    name = cls.model_fields["family"].default
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a string default for its `family` field")
    return ENDPOINT_FAMILIES.register(name, cls)


def family(name: str) -> type[EndpointFamily]:
    return ENDPOINT_FAMILIES.get(name)


def family_names() -> tuple[str, ...]:
    return ENDPOINT_FAMILIES.names()
