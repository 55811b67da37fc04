"""Shared fixtures: real SQLite and PostgreSQL registries, tiny real models, coordinator processes."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from coordinator.registry import migrate  # noqa: E402
from coordinator.registry.db import make_engine, session_factory  # noqa: E402
from moerge.experts.manifest import Label  # noqa: E402
from moerge.models import BaseModelSpec  # noqa: E402
from tests.support import CoordinatorProcess, tiny_bert  # noqa: E402

PG_URL = os.environ.get(
    "MOERGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]
TINY_BASE = "tiny-bert"


def _pg_admin():  # type: ignore[no-untyped-def]
    return create_engine(PG_URL, isolation_level="AUTOCOMMIT")


def _pg_url(database: str) -> str:
    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Migrated template registries, copied for each test: Alembic builds every schema."""
    sqlite_file = tmp_path_factory.mktemp("template") / "registry.sqlite3"
    migrate.upgrade(f"sqlite:///{sqlite_file}")
    pg_name = f"moerge_tpl_{uuid.uuid4().hex[:8]}"
    admin = _pg_admin()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{pg_name}"'))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL is not reachable at {PG_URL} ({exc}); start it (see .ci/run)")
    migrate.upgrade(_pg_url(pg_name))
    yield {"sqlite": str(sqlite_file), "postgresql": pg_name}
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def new_database(backend: str, templates: dict[str, str], directory: Path) -> Iterator[str]:
    """A fresh, migrated registry on the given backend."""
    if backend == "sqlite":
        target = directory / f"registry-{uuid.uuid4().hex[:6]}.sqlite3"
        shutil.copy(templates["sqlite"], target)
        yield f"sqlite:///{target}"
        return
    name = f"moerge_t_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{templates["postgresql"]}"'))
    try:
        yield _pg_url(name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def empty_database(backend: str, directory: Path) -> Iterator[str]:
    """A database with no schema at all, for migration tests."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / f'empty-{uuid.uuid4().hex[:6]}.sqlite3'}"
        return
    name = f"moerge_e_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield _pg_url(name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, templates: dict[str, str], tmp_path: Path
) -> Iterator[str]:
    with new_database(request.param, templates, tmp_path) as url:
        yield url


@pytest.fixture
def sessions(database_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BaseModelSpec]:
    from moerge.models import describe

    path = tiny_bert(tmp_path_factory.mktemp("models") / TINY_BASE)
    return path, describe(path, TINY_BASE)


def register_base(url: str, spec: BaseModelSpec, path: Path | None = None) -> None:
    from coordinator.services import base_models

    engine = make_engine(url)
    with session_factory(engine).begin() as session:
        base_models.register(session, spec=spec, actor="test", path=path)
    engine.dispose()


ExpertFactory = Callable[..., Path]


@pytest.fixture
def make_expert(tiny_base: tuple[Path, BaseModelSpec], tmp_path: Path) -> ExpertFactory:
    """Build a real PEFT LoRA expert directory on the tiny base model."""
    from moerge.experts.adapters import create_lora

    def build(
        name: str,
        version: str = "1",
        *,
        rank: int = 4,
        seed: int = 0,
        targets: tuple[str, ...] = ("query", "value"),
    ) -> Path:
        out = tmp_path / "experts" / f"{name}-{version}-{uuid.uuid4().hex[:4]}"
        return create_lora(
            tiny_base[0],
            out,
            name=name,
            version=version,
            base_name=TINY_BASE,
            rank=rank,
            seed=seed,
            target_modules=targets,
            task_description=f"task of {name}",
            labels=[Label("pos", "positive"), Label("neg", "negative")],
        )

    return build


@contextmanager
def running_coordinator(
    url: str, data_dir: Path, spec: BaseModelSpec, *extra: str, path: Path | None = None
) -> Iterator[CoordinatorProcess]:
    register_base(url, spec, path)
    process = CoordinatorProcess(data_dir, url, tuple(extra)).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def coordinator(
    request: pytest.FixtureRequest,
    templates: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    tiny_base: tuple[Path, BaseModelSpec],
) -> Iterator[CoordinatorProcess]:
    """One real coordinator per backend for a test module; tests use their own names."""
    directory = tmp_path_factory.mktemp(f"coordinator-{request.param}")
    with (
        new_database(request.param, templates, directory) as url,
        running_coordinator(url, directory / "data", tiny_base[1], path=tiny_base[0]) as process,
    ):
        yield process


@pytest.fixture(scope="session")
def task_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real task data: every Debian package of moerge.tasks, fetched once per session."""
    from moerge.tasks.fetch import fetch

    return fetch(tmp_path_factory.mktemp("task-data"), progress=False)
