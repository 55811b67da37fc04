"""The audit log: who did what to which object."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coordinator.registry.models import AuditEntry


def record(session: Session, *, actor: str, action: str, target: str, **detail: Any) -> None:
    session.add(AuditEntry(actor=actor, action=action, target=target, detail=detail))


def recent(session: Session, *, limit: int = 100) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    return list(session.scalars(query))
