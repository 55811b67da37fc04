"""Registered base models: name, fingerprint and the modules adapters may target."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from coordinator.registry.models import BaseModelEntry
from coordinator.services import audit
from coordinator.services.errors import Code, ServiceError
from moerge.models import DEFAULT_BASE_MODEL, BaseModelSpec, default_base_model_path


def to_spec(row: BaseModelEntry) -> BaseModelSpec:
    return BaseModelSpec.from_json(row.name, row.fingerprint, row.spec)


def register(
    session: Session, *, spec: BaseModelSpec, actor: str, path: Path | None = None
) -> tuple[BaseModelSpec, bool]:
    """Register a base model; (spec, created). Registering the same model twice is a no-op.

    `path` is where the coordinator finds the weights to route and predict with.
    """
    by_name = session.scalar(select(BaseModelEntry).where(BaseModelEntry.name == spec.name))
    by_print = session.scalar(
        select(BaseModelEntry).where(BaseModelEntry.fingerprint == spec.fingerprint)
    )
    if by_name is not None and by_name is by_print:
        return to_spec(by_name), False
    if by_name is not None:
        raise ServiceError(
            Code.ALREADY_EXISTS, f"base model {spec.name!r} is registered with another fingerprint"
        )
    if by_print is not None:
        raise ServiceError(
            Code.ALREADY_EXISTS, f"this model is already registered as {by_print.name!r}"
        )
    row = BaseModelEntry(
        name=spec.name,
        fingerprint=spec.fingerprint,
        hidden_size=spec.hidden_size,
        spec={**spec.to_json(), **({"path": str(Path(path).resolve())} if path else {})},
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="base_model.register",
        target=spec.name,
        fingerprint=spec.fingerprint,
    )
    return spec, True


def get(session: Session, *, name: str) -> BaseModelSpec | None:
    row = session.scalar(select(BaseModelEntry).where(BaseModelEntry.name == name))
    return to_spec(row) if row else None


def weights_dir(session: Session, *, name: str) -> Path:
    """Where this coordinator finds a base model's weights."""
    row = session.scalar(select(BaseModelEntry).where(BaseModelEntry.name == name))
    if row is None:
        raise ServiceError(Code.NOT_FOUND, f"no base model named {name!r}")
    if row.spec.get("path"):
        return Path(row.spec["path"])
    if name == DEFAULT_BASE_MODEL:
        return default_base_model_path()
    raise ServiceError(
        Code.FAILED_PRECONDITION,
        f"the coordinator has no weights for base model {name!r}: "
        "register it with `moerge-coordinator base-models register DIR`",
    )


def list_all(session: Session) -> list[tuple[BaseModelSpec, datetime]]:
    """Every registered base model with the time it was registered."""
    rows = session.scalars(select(BaseModelEntry).order_by(BaseModelEntry.name))
    return [(to_spec(row), row.created_at) for row in rows]
