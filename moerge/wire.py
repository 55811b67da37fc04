"""Conversion between wire messages and domain objects, in one place.

Protobuf messages stop at the transport layer: servicers and clients convert
with these functions and pass domain dataclasses everywhere else.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from moerge._proto.v1 import common_pb2 as pb
from moerge.experts.manifest import (
    ExpertInfo,
    ExpertManifest,
    FileEntry,
    Label,
    LoraSummary,
    StatsEntry,
)
from moerge.experts.validation import Problem, ValidationError

STATUS_TO_PB = {
    "pending": pb.EXPERT_STATUS_PENDING,
    "active": pb.EXPERT_STATUS_ACTIVE,
    "quarantined": pb.EXPERT_STATUS_QUARANTINED,
    "retired": pb.EXPERT_STATUS_RETIRED,
}
STATUS_FROM_PB = {v: k for k, v in STATUS_TO_PB.items()}


def manifest_to_pb(m: ExpertManifest) -> pb.ExpertManifest:
    return pb.ExpertManifest(
        name=m.name,
        version=m.version,
        base_model_name=m.base_model_name,
        base_model_fingerprint=m.base_model_fingerprint,
        task_description=m.task_description,
        labels=[pb.Label(name=x.name, description=x.description) for x in m.labels],
        lora=pb.LoraSummary(
            rank=m.lora.rank,
            alpha=m.lora.alpha,
            target_modules=list(m.lora.target_modules),
            dropout=m.lora.dropout,
        ),
        files=[pb.FileEntry(path=f.path, size=f.size, sha256=f.sha256) for f in m.files],
        stats=[
            pb.StatsEntry(kind=s.kind, path=s.path, meta_json=json.dumps(s.meta, sort_keys=True))
            for s in m.stats
        ],
        license=m.license,
    )


def _meta(entry: pb.StatsEntry) -> dict[str, object]:
    try:
        meta = json.loads(entry.meta_json) if entry.meta_json else {}
    except json.JSONDecodeError as exc:
        raise ValidationError(
            Problem.INVALID, f"statistics {entry.kind!r}: meta_json is not JSON"
        ) from exc
    if not isinstance(meta, dict):
        raise ValidationError(
            Problem.INVALID, f"statistics {entry.kind!r}: meta_json is not an object"
        )
    return meta


def manifest_from_pb(msg: pb.ExpertManifest) -> ExpertManifest:
    return ExpertManifest(
        name=msg.name,
        version=msg.version,
        base_model_name=msg.base_model_name,
        base_model_fingerprint=msg.base_model_fingerprint,
        task_description=msg.task_description,
        labels=tuple(Label(x.name, x.description) for x in msg.labels),
        # float32 on the wire: round so that the digest is stable across round trips
        lora=LoraSummary(
            msg.lora.rank,
            round(msg.lora.alpha, 4),
            tuple(msg.lora.target_modules),
            round(msg.lora.dropout, 4),
        ),
        files=tuple(FileEntry(f.path, f.size, f.sha256) for f in msg.files),
        stats=tuple(StatsEntry(s.kind, s.path, _meta(s)) for s in msg.stats),
        license=msg.license,
    )


def expert_to_pb(info: ExpertInfo) -> pb.Expert:
    msg = pb.Expert(
        id=info.id,
        manifest=manifest_to_pb(info.manifest),
        contributor=info.contributor,
        status=STATUS_TO_PB[info.status],
        size_bytes=info.manifest.total_size,
    )
    msg.created_at.FromDatetime(info.created_at)
    return msg


def expert_from_pb(msg: pb.Expert) -> ExpertInfo:
    created = (
        msg.created_at.ToDatetime(tzinfo=UTC) if msg.HasField("created_at") else datetime.now(UTC)
    )
    status = STATUS_FROM_PB.get(msg.status, "pending")
    return ExpertInfo(manifest_from_pb(msg.manifest), msg.contributor, status, created, msg.id)
