"""Migrations go up and down cleanly on SQLite and PostgreSQL and match the models."""

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from coordinator.registry import migrate
from coordinator.registry.db import make_engine
from coordinator.registry.models import Base
from tests.conftest import BACKENDS, empty_database


def _diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_matches_models_and_downgrade_removes_everything(
    backend: str, tmp_path: Path
) -> None:
    with empty_database(backend, tmp_path) as url:
        migrate.upgrade(url)
        assert migrate.is_current(url)
        assert _diff(url) == [], "models and migrations drifted: run `make migration m=...`"
        assert _tables(url) == set(Base.metadata.tables)
        migrate.downgrade(url, "base")
        assert _tables(url) == set()
        assert migrate.current(url) is None
        migrate.upgrade(url)  # and up again
        assert _diff(url) == []


def test_revisions_are_date_prefixed() -> None:
    versions = Path(migrate.MIGRATIONS / "versions").glob("*.py")
    names = [p.name for p in versions]
    assert names and all(n[:4].isdigit() and n[4] == "_" for n in names)
