"""The registry of routing methods: a leaf module, so any module may import it."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from moerge.routing.base import Router

ROUTERS: dict[str, type[Router]] = {}

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
R = TypeVar("R", bound="type[Router]")


class UnknownRouterError(KeyError):
    """A routing method name that no module registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def register(name: str) -> Callable[[R], R]:
    """Class decorator: registers a Router subclass under a lowercase, unique name."""
    if not _NAME_RE.match(name):
        raise ValueError(f"routing method name {name!r} must be lowercase [a-z][a-z0-9_]*")

    def wrap(cls: R) -> R:
        if name in ROUTERS:
            raise ValueError(
                f"routing method {name!r} is registered twice "
                f"({ROUTERS[name].__module__} and {cls.__module__})"
            )
        cls.name = name
        ROUTERS[name] = cls
        return cls

    return wrap


def get(name: str) -> type[Router]:
    """The Router class registered as `name`."""
    try:
        return ROUTERS[name]
    except KeyError:
        known = ", ".join(sorted(ROUTERS)) or "none"
        raise UnknownRouterError(f"unknown routing method {name!r} (known: {known})") from None


def create(name: str, **config_overrides: Any) -> Router:
    """A new, unfitted router of method `name`, its config defaults overridden by keyword."""
    cls = get(name)
    known = {f.name for f in dataclasses.fields(cls.config_cls)}
    unknown = sorted(set(config_overrides) - known)
    if unknown:
        raise ValueError(
            f"{name}: unknown config fields {unknown} (known: {', '.join(sorted(known))})"
        )
    return cls(cls.config_cls(**config_overrides))
