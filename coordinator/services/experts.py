"""The expert pool: look-ups, listing and retirement."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from coordinator.registry.models import BaseModelEntry, Expert
from coordinator.services import audit
from coordinator.services.contributors import Principal
from coordinator.services.errors import denied, not_found
from moerge.experts.manifest import ADAPTER_CONFIG, ADAPTER_WEIGHTS, ExpertInfo, ExpertManifest


def to_info(row: Expert) -> ExpertInfo:
    return ExpertInfo(
        manifest=ExpertManifest.from_json(row.manifest),
        contributor=row.contributor.name,
        status=row.status,
        created_at=row.created_at,
        id=row.id,
    )


def find(session: Session, *, name: str, version: str = "") -> Expert | None:
    query = select(Expert).where(Expert.name == name)
    if version:
        return session.scalar(query.where(Expert.version == version))
    return session.scalar(query.order_by(Expert.created_at.desc(), Expert.id.desc()).limit(1))


def get(session: Session, *, name: str, version: str = "") -> Expert:
    row = find(session, name=name, version=version)
    if row is None:
        what = f"{name}:{version}" if version else name
        raise not_found(f"no expert named {what!r}")
    return row


def list_experts(
    session: Session,
    *,
    principal: Principal,
    base_model_name: str = "",
    include_retired: bool = False,
    mine: bool = False,
) -> list[ExpertInfo]:
    query = select(Expert).order_by(Expert.name, Expert.created_at)
    if base_model_name:
        query = query.join(BaseModelEntry).where(BaseModelEntry.name == base_model_name)
    if not include_retired:
        query = query.where(Expert.status != "retired")
    if mine:
        query = query.where(Expert.contributor_id == principal.id)
    return [to_info(row) for row in session.scalars(query).unique()]


def retire(
    session: Session, *, principal: Principal, name: str, version: str, reason: str = ""
) -> ExpertInfo:
    row = get(session, name=name, version=version)
    if row.contributor_id != principal.id and not principal.is_admin:
        raise denied(
            f"{principal.name!r} may not retire {row.name}:{row.version}, "
            f"which belongs to {row.contributor.name!r}"
        )
    if row.status != "retired":
        row.status = "retired"
        audit.record(
            session,
            actor=principal.name,
            action="expert.retire",
            target=f"{row.name}:{row.version}",
            reason=reason,
        )
    return to_info(row)


def blob_of(row: Expert, path: str) -> str:
    """The blob that holds one file of an expert."""
    if path == ADAPTER_CONFIG:
        return row.adapter_config_blob
    if path == ADAPTER_WEIGHTS:
        return row.adapter_weights_blob
    for stats in row.stats:
        if f"stats/{stats.kind}.safetensors" == path:
            return stats.blob
    raise not_found(f"expert {row.name}:{row.version} has no file {path!r}")
