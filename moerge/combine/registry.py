"""The registry of combinations, by name (a leaf module: everything may import it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

COMBINATIONS: dict[str, type[Any]] = {}

T = TypeVar("T", bound=type[Any])


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make a combination available under a unique lowercase name."""
    if not name or name != name.lower():
        raise ValueError(f"combination names are lowercase and non-empty: {name!r}")

    def wrap(cls: T) -> T:
        if name in COMBINATIONS:
            raise ValueError(f"combination {name!r} is registered twice")
        cls.name = name
        COMBINATIONS[name] = cls
        return cls

    return wrap


def get(name: str) -> type[Any]:
    if name not in COMBINATIONS:
        known = ", ".join(sorted(COMBINATIONS))
        raise KeyError(f"unknown combination {name!r} (known: {known})")
    return COMBINATIONS[name]
