"""The registry of routing methods: a leaf module, so any module may import it.

Methods route at one of three granularities, each with its own interface:
- ROUTERS: per input, from expert statistics (`moerge.routing.base.Router`); the
  coordinator's gating job fits and serves these;
- TOKEN_ROUTERS: per token and per adapted module, inside the model
  (`moerge.routing.token.TokenRouter`, used by the `token_mixture` combination);
- TASK_ROUTERS: per task, from a few labelled examples of it (LoraHub).
A name is unique across all three.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from moerge.routing.base import Router

ROUTERS: dict[str, type[Router]] = {}
TOKEN_ROUTERS: dict[str, type[Any]] = {}
TASK_ROUTERS: dict[str, type[Any]] = {}
GRANULARITIES: dict[str, dict[str, Any]] = {
    "input": ROUTERS,
    "token": TOKEN_ROUTERS,
    "task": TASK_ROUTERS,
}

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
R = TypeVar("R", bound=type[Any])


class UnknownRouterError(KeyError):
    """A routing method name that no module registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def register(name: str, granularity: str = "input") -> Callable[[R], R]:
    """Class decorator: registers a routing method under a lowercase name, unique across
    granularities ("input": a Router subclass; "token"; "task")."""
    if not _NAME_RE.match(name):
        raise ValueError(f"routing method name {name!r} must be lowercase [a-z][a-z0-9_]*")
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}")

    def wrap(cls: R) -> R:
        for table in GRANULARITIES.values():
            if name in table:
                raise ValueError(
                    f"routing method {name!r} is registered twice "
                    f"({table[name].__module__} and {cls.__module__})"
                )
        cls.name = name
        GRANULARITIES[granularity][name] = cls
        return cls

    return wrap


def all_methods() -> dict[str, str]:
    """Every registered method name -> its granularity."""
    return {name: g for g, table in GRANULARITIES.items() for name in table}


def get(name: str) -> type[Router]:
    """The Router class registered as `name`."""
    try:
        return ROUTERS[name]
    except KeyError:
        known = ", ".join(sorted(ROUTERS)) or "none"
        granularity = all_methods().get(name)
        if granularity is not None:
            raise UnknownRouterError(
                f"routing method {name!r} routes per {granularity}, not per input "
                f"(per-input methods: {known})"
            ) from None
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
