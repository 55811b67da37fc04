"""Router versions in the registry: record a new one, swap it in, find the active one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from coordinator.registry.models import BaseModelEntry, Expert
from coordinator.registry.models import Router as RouterRow
from coordinator.services import audit
from coordinator.services.errors import Code, ServiceError


@dataclass(frozen=True)
class RouterView:
    id: int
    base_model_name: str
    method: str
    version: int
    experts: tuple[str, ...]  # "name:version", in the router's order
    expert_ids: tuple[str, ...]
    metrics: dict[str, Any]
    blob: str
    active: bool
    created_at: datetime


def _view(row: RouterRow, base_name: str, refs: dict[str, str]) -> RouterView:
    ids = tuple(str(x) for x in row.expert_ids)
    return RouterView(
        id=row.id,
        base_model_name=base_name,
        method=row.method,
        version=row.version,
        experts=tuple(refs.get(i, i) for i in ids),
        expert_ids=ids,
        metrics=dict(row.metrics),
        blob=row.blob,
        active=row.active,
        created_at=row.created_at,
    )


def _refs(session: Session, ids: list[str]) -> dict[str, str]:
    rows = session.execute(select(Expert.id, Expert.name, Expert.version).where(Expert.id.in_(ids)))
    return {i: f"{n}:{v}" for i, n, v in rows}


def _base(session: Session, name: str) -> BaseModelEntry:
    row = session.scalar(select(BaseModelEntry).where(BaseModelEntry.name == name))
    if row is None:
        raise ServiceError(Code.NOT_FOUND, f"no base model named {name!r}")
    return row


def record(
    session: Session,
    *,
    base_model_name: str,
    method: str,
    expert_ids: list[str],
    metrics: dict[str, Any],
    blob: str,
    actor: str,
) -> RouterView:
    """Store a new router version and make it the active one, in this transaction.

    The version is the next integer for the base model; deactivating the old
    router and activating the new one commit together, so readers see one or
    the other, never none.
    """
    base = _base(session, base_model_name)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"router/{base.id}"}
        )
    latest = session.scalar(
        select(func.max(RouterRow.version)).where(RouterRow.base_model_id == base.id)
    )
    session.execute(
        update(RouterRow).where(RouterRow.base_model_id == base.id).values(active=False)
    )
    row = RouterRow(
        base_model_id=base.id,
        method=method,
        version=(latest or 0) + 1,
        expert_ids=list(expert_ids),
        metrics=metrics,
        blob=blob,
        active=True,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="router.activate",
        target=f"{base_model_name}/{row.version}",
        method=method,
        experts=len(expert_ids),
    )
    return _view(row, base.name, _refs(session, list(expert_ids)))


def active(session: Session, *, base_model_name: str) -> RouterView | None:
    """The router that answers for a base model now, if the gating job has produced one."""
    base = _base(session, base_model_name)
    row = session.scalar(
        select(RouterRow).where(RouterRow.base_model_id == base.id, RouterRow.active.is_(True))
    )
    if row is None:
        return None
    return _view(row, base.name, _refs(session, [str(x) for x in row.expert_ids]))


def active_id(session: Session, *, base_model_name: str) -> int | None:
    """Only the id of the active router: the cheap check every routing call makes."""
    return session.scalar(
        select(RouterRow.id)
        .join(BaseModelEntry, BaseModelEntry.id == RouterRow.base_model_id)
        .where(BaseModelEntry.name == base_model_name, RouterRow.active.is_(True))
    )


def list_versions(session: Session, *, base_model_name: str) -> list[RouterView]:
    base = _base(session, base_model_name)
    rows = list(
        session.scalars(
            select(RouterRow).where(RouterRow.base_model_id == base.id).order_by(RouterRow.version)
        )
    )
    refs = _refs(session, sorted({str(i) for r in rows for i in r.expert_ids}))
    return [_view(row, base.name, refs) for row in rows]


def pool(session: Session, *, base_model_name: str) -> list[Expert]:
    """The active experts of a base model, in a stable order."""
    base = _base(session, base_model_name)
    query = (
        select(Expert)
        .where(Expert.base_model_id == base.id, Expert.status == "active")
        .order_by(Expert.name, Expert.version)
    )
    return list(session.scalars(query).unique())
