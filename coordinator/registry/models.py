"""SQLAlchemy models of the registry. Alembic migrations in migrations/ build the schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the registry; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Contributor(Base):
    __tablename__ = "contributors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class BaseModelEntry(Base):
    __tablename__ = "base_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    hidden_size: Mapped[int] = mapped_column(Integer)
    # hidden size, linear modules (name -> [in, out]) and the model config
    spec: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Expert(Base):
    __tablename__ = "experts"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_experts_name_version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    contributor_id: Mapped[int] = mapped_column(ForeignKey("contributors.id"), index=True)
    base_model_id: Mapped[int] = mapped_column(ForeignKey("base_models.id"), index=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    adapter_config_blob: Mapped[str] = mapped_column(String(64))
    adapter_weights_blob: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # the manifest as uploaded: task description, labels, LoRA summary, files, license
    manifest: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    contributor: Mapped[Contributor] = relationship(lazy="joined")
    base_model: Mapped[BaseModelEntry] = relationship(lazy="joined")
    stats: Mapped[list[ExpertStats]] = relationship(
        back_populates="expert", cascade="all, delete-orphan", order_by="ExpertStats.kind"
    )


class ExpertStats(Base):
    __tablename__ = "expert_stats"
    __table_args__ = (UniqueConstraint("expert_id", "kind", name="uq_expert_stats_expert_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    expert_id: Mapped[str] = mapped_column(ForeignKey("experts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    blob: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    expert: Mapped[Expert] = relationship(back_populates="stats")


class Upload(Base):
    __tablename__ = "uploads"
    __table_args__ = (
        UniqueConstraint("contributor_id", "manifest_digest", name="uq_uploads_contributor_digest"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    contributor_id: Mapped[int] = mapped_column(ForeignKey("contributors.id"), index=True)
    manifest_digest: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict[str, Any]]
    # receiving, committed, failed, abandoned
    state: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    expert_id: Mapped[str | None] = mapped_column(ForeignKey("experts.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Router(Base):
    __tablename__ = "routers"
    __table_args__ = (UniqueConstraint("base_model_id", "version", name="uq_routers_base_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    base_model_id: Mapped[int] = mapped_column(ForeignKey("base_models.id"), index=True)
    method: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    expert_ids: Mapped[list[Any]]
    metrics: Mapped[dict[str, Any]]
    blob: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    # queued, running, succeeded, failed
    state: Mapped[str] = mapped_column(String(16))
    base_model_id: Mapped[int | None] = mapped_column(ForeignKey("base_models.id"), default=None)
    params: Mapped[dict[str, Any]]
    result: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # contributor name, or "cli" for the coordinator's own command line
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(256))
    detail: Mapped[dict[str, Any]]
