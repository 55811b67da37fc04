"""Contributors, their tokens and roles. Only a sha256 of each token is stored."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coordinator.registry.models import Contributor, Expert, utcnow
from coordinator.services import audit
from coordinator.services.errors import Code, ServiceError, denied, not_found

ROLES = ("contributor", "admin")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
TOKEN_PREFIX = "moerge_"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of a request."""

    id: int
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class ContributorView:
    name: str
    role: str
    created_at: datetime
    revoked: bool
    active_experts: int


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _view(session: Session, row: Contributor) -> ContributorView:
    count = session.scalar(
        select(func.count())
        .select_from(Expert)
        .where(Expert.contributor_id == row.id, Expert.status == "active")
    )
    return ContributorView(
        row.name, row.role, row.created_at, row.revoked_at is not None, int(count or 0)
    )


def create(
    session: Session, *, name: str, role: str = "contributor", actor: str
) -> tuple[ContributorView, str]:
    """A new contributor and its token (returned once, never stored)."""
    if not NAME_RE.match(name):
        raise ServiceError(Code.INVALID_ARGUMENT, f"contributor name {name!r} is invalid")
    if role not in ROLES:
        raise ServiceError(
            Code.INVALID_ARGUMENT, f"role {role!r} is invalid (expected {' or '.join(ROLES)})"
        )
    if session.scalar(select(Contributor).where(Contributor.name == name)) is not None:
        raise ServiceError(
            Code.ALREADY_EXISTS, f"contributor {name!r} already exists; use `tokens rotate`"
        )
    token = new_token()
    row = Contributor(name=name, role=role, token_hash=hash_token(token))
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="token.create", target=name, role=role)
    return _view(session, row), token


def rotate(session: Session, *, name: str, actor: str) -> str:
    """A fresh token for a contributor; the old one stops working, a revoked one comes back."""
    row = _get(session, name)
    token = new_token()
    row.token_hash = hash_token(token)
    row.revoked_at = None
    audit.record(session, actor=actor, action="token.rotate", target=name)
    return token


def revoke(session: Session, *, name: str, actor: str) -> ContributorView:
    row = _get(session, name)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, actor=actor, action="token.revoke", target=name)
    return _view(session, row)


def _get(session: Session, name: str) -> Contributor:
    row = session.scalar(select(Contributor).where(Contributor.name == name))
    if row is None:
        raise not_found(f"no contributor named {name!r}")
    return row


def list_all(session: Session) -> list[ContributorView]:
    rows = session.scalars(select(Contributor).order_by(Contributor.name))
    return [_view(session, row) for row in rows]


def describe(session: Session, *, principal: Principal) -> ContributorView:
    return _view(session, _get(session, principal.name))


def authenticate(session: Session, *, token: str | None) -> Principal:
    if not token:
        raise ServiceError(
            Code.UNAUTHENTICATED, "missing token: send 'authorization: Bearer <token>'"
        )
    row = session.scalar(select(Contributor).where(Contributor.token_hash == hash_token(token)))
    if row is None:
        raise ServiceError(Code.UNAUTHENTICATED, "invalid token")
    if row.revoked_at is not None:
        raise ServiceError(Code.UNAUTHENTICATED, f"the token of {row.name!r} has been revoked")
    return Principal(row.id, row.name, row.role)


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise denied(f"{principal.name!r} is not an admin")
