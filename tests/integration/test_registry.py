"""The service layer on a real registry (SQLite and PostgreSQL)."""

from pathlib import Path

import pytest
from sqlalchemy import select

from coordinator.registry.models import AuditEntry, Contributor
from coordinator.services import base_models, contributors
from coordinator.services.errors import Code, ServiceError
from moerge.models import BaseModelSpec


def test_tokens_are_stored_only_as_hashes(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        view, token = contributors.create(session, name="alice", actor="test")
    assert token.startswith("moerge_") and len(token) > 40
    with sessions() as session:
        row = session.scalar(select(Contributor).where(Contributor.name == "alice"))
        assert row is not None and row.token_hash == contributors.hash_token(token)
        assert token not in repr(row.__dict__)
        assert contributors.authenticate(session, token=token).name == "alice"
        assert view.created_at.tzinfo is not None


@pytest.mark.parametrize(
    ("token", "message"),
    [(None, "missing token"), ("", "missing token"), ("moerge_wrong", "invalid token")],
)
def test_missing_and_wrong_tokens_are_unauthenticated(sessions, token, message) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session, pytest.raises(ServiceError) as info:
        contributors.authenticate(session, token=token)
    assert info.value.code is Code.UNAUTHENTICATED and message in info.value.message


def test_revoke_and_rotate(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        _, token = contributors.create(session, name="bob", actor="test")
        contributors.revoke(session, name="bob", actor="test")
    with sessions() as session, pytest.raises(ServiceError, match="revoked"):
        contributors.authenticate(session, token=token)
    with sessions.begin() as session:
        fresh = contributors.rotate(session, name="bob", actor="test")
    with sessions() as session:
        assert contributors.authenticate(session, token=fresh).name == "bob"
        with pytest.raises(ServiceError, match="invalid token"):
            contributors.authenticate(session, token=token)
        actions = [e.action for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == ["token.create", "token.revoke", "token.rotate"]


def test_duplicate_and_invalid_contributors(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        contributors.create(session, name="carol", actor="test")
    for name, role, code in (
        ("carol", "contributor", Code.ALREADY_EXISTS),
        ("bad name!", "contributor", Code.INVALID_ARGUMENT),
        ("dave", "root", Code.INVALID_ARGUMENT),
    ):
        with sessions.begin() as session, pytest.raises(ServiceError) as info:
            contributors.create(session, name=name, role=role, actor="test")
        assert info.value.code is code
    with sessions() as session:
        assert [v.name for v in contributors.list_all(session)] == ["carol"]


def test_base_model_registration_is_idempotent_and_checked(  # type: ignore[no-untyped-def]
    sessions, tiny_base: tuple[Path, BaseModelSpec]
) -> None:
    _, spec = tiny_base
    with sessions.begin() as session:
        assert base_models.register(session, spec=spec, actor="test")[1] is True
    with sessions.begin() as session:
        assert base_models.register(session, spec=spec, actor="test")[1] is False
    other = BaseModelSpec(spec.name, "f" * 64, spec.hidden_size, spec.linear_modules)
    with sessions.begin() as session, pytest.raises(ServiceError, match="another fingerprint"):
        base_models.register(session, spec=other, actor="test")
    with sessions() as session:
        stored = base_models.get(session, name=spec.name)
    assert stored == BaseModelSpec(
        spec.name, spec.fingerprint, spec.hidden_size, spec.linear_modules, spec.config
    )
