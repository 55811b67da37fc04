"""The registry of routing-statistics kinds and the shapes each requires."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Shapes = Mapping[str, tuple[int, ...]]


class StatsShapeError(ValueError):
    """Statistics whose tensors do not have the shapes their kind requires."""


@dataclass(frozen=True)
class StatsKind:
    name: str
    description: str
    # (tensor shapes, metadata, base hidden size) -> raises StatsShapeError
    check_shapes: Callable[[Shapes, Mapping[str, Any], int], None]


KINDS: dict[str, StatsKind] = {}


def register(name: str, description: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def wrap(check: Callable[..., None]) -> Callable[..., None]:
        if name in KINDS:
            raise ValueError(f"statistics kind {name!r} is registered twice")
        KINDS[name] = StatsKind(name, description, check)
        return check

    return wrap


def _expect(shapes: Shapes, name: str, shape: tuple[int, ...], kind: str) -> None:
    if name not in shapes:
        raise StatsShapeError(f"{kind}: missing tensor {name!r} (expected shape {list(shape)})")
    if tuple(shapes[name]) != shape:
        raise StatsShapeError(
            f"{kind}: tensor {name!r} has shape {list(shapes[name])}, expected {list(shape)}"
        )


@register(
    "embedding_moments",
    "count, sum and second moment of the base model's pooled embeddings of the training "
    "inputs; the second moment is full (d x d), diagonal (d) or low-rank (d x k plus diagonal)",
)
def _embedding_moments(shapes: Shapes, meta: Mapping[str, Any], hidden: int) -> None:
    kind = "embedding_moments"
    if "count" not in shapes or tuple(shapes["count"]) not in {(), (1,)}:
        raise StatsShapeError(f"{kind}: 'count' must be a scalar")
    _expect(shapes, "sum", (hidden,), kind)
    form = meta.get("form", "full")
    if form == "full":
        _expect(shapes, "outer", (hidden, hidden), kind)
    elif form == "diag":
        _expect(shapes, "diag", (hidden,), kind)
    elif form == "lowrank":
        factors = shapes.get("factors")
        if (
            factors is None
            or len(factors) != 2
            or factors[0] != hidden
            or not 0 < factors[1] <= hidden
        ):
            raise StatsShapeError(
                f"{kind}: 'factors' must have shape [{hidden}, k] with 0 < k <= {hidden}"
            )
        _expect(shapes, "diag", (hidden,), kind)
    else:
        raise StatsShapeError(f"{kind}: unknown form {form!r} (expected full, diag or lowrank)")
    allowed = {"count", "sum", "outer", "diag", "factors"}
    extra = sorted(set(shapes) - allowed)
    if extra:
        raise StatsShapeError(f"{kind}: unexpected tensors {extra}")


_MODULE_PATH = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")


def _per_module_vectors(kind: str, shapes: Shapes, hidden: int) -> None:
    """One vector per adapted module, named by the module's path in the base model."""
    if not shapes:
        raise StatsShapeError(f"{kind}: no module vectors")
    for name, shape in shapes.items():
        if not _MODULE_PATH.match(name):
            raise StatsShapeError(f"{kind}: {name!r} is not a module path")
        if len(shape) != 1 or not 0 < shape[0] <= 64 * hidden:
            raise StatsShapeError(f"{kind}: {name!r} must be a vector, got shape {list(shape)}")


@register(
    "arrow",
    "Arrow prototypes: per adapted module, the top right-singular vector of the expert's "
    "update B A (computed from the adapter itself, by the coordinator or locally)",
)
def _arrow(shapes: Shapes, meta: Mapping[str, Any], hidden: int) -> None:
    _per_module_vectors("arrow", shapes, hidden)


@register(
    "phatgoose_gates",
    "PHATGOOSE gates: per adapted module, a sigmoid gate vector over the module's input, "
    "trained after the expert with the base model and the expert frozen",
)
def _phatgoose_gates(shapes: Shapes, meta: Mapping[str, Any], hidden: int) -> None:
    _per_module_vectors("phatgoose_gates", shapes, hidden)


MAX_EXAMPLES = 256


@register(
    "examples",
    "a few base-model embeddings of training inputs (opt-in; for retrieval routing)",
)
def _examples(shapes: Shapes, meta: Mapping[str, Any], hidden: int) -> None:
    kind = "examples"
    if set(shapes) != {"embeddings"}:
        raise StatsShapeError(f"{kind}: expected exactly one tensor 'embeddings'")
    shape = tuple(shapes["embeddings"])
    if len(shape) != 2 or shape[1] != hidden or not 0 < shape[0] <= MAX_EXAMPLES:
        raise StatsShapeError(
            f"{kind}: 'embeddings' must have shape [n, {hidden}] with 0 < n <= {MAX_EXAMPLES}, "
            f"got {list(shape)}"
        )


def validate_stats(kind: str, shapes: Shapes, meta: Mapping[str, Any], hidden_size: int) -> None:
    if kind not in KINDS:
        raise StatsShapeError(
            f"unknown statistics kind {kind!r} (known: {', '.join(sorted(KINDS))})"
        )
    KINDS[kind].check_shapes(shapes, meta, hidden_size)
