"""Resumable, atomic uploads of experts.

An upload is identified by (contributor, manifest digest). Its bytes are
spooled to part files whose sizes are the truth about how far it got, so a
broken stream, or a coordinator restart, resumes where the bytes stop. The
expert becomes visible only in the transaction that commits it, after every
file is complete, hash-verified and validated; a refused upload leaves nothing.

Unlike other services, an upload spans a long stream between short
transactions, so this service owns its sessions.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from coordinator.blobs import BlobStore
from coordinator.registry.models import BaseModelEntry, Expert, ExpertStats, Upload, utcnow
from coordinator.services import audit, base_models, experts
from coordinator.services.contributors import Principal
from coordinator.services.errors import Code, ServiceError, denied
from moerge.experts.lora import check_adapter_config, check_adapter_weights
from moerge.experts.manifest import ADAPTER_CONFIG, ADAPTER_WEIGHTS, ExpertInfo, ExpertManifest
from moerge.experts.validation import (
    Limits,
    Problem,
    ValidationError,
    check_base,
    check_manifest,
    check_stats_file,
)

MAX_CHUNK = 1024 * 1024
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadProgress:
    upload_id: str
    state: str  # new, receiving, committed, failed, abandoned
    received: dict[str, int]
    expert: ExpertInfo | None = None
    error: str = ""


@dataclass
class _Part:
    path: Path
    declared: int
    sha256: str
    size: int
    handle: BinaryIO
    digest: hashlib._Hash

    @classmethod
    def open(cls, path: Path, declared: int, sha256: str) -> _Part:
        digest = hashlib.sha256()
        if path.exists():  # resumed: hash what is already there
            with open(path, "rb") as existing:
                while chunk := existing.read(MAX_CHUNK):
                    digest.update(chunk)
        handle = open(path, "ab")  # noqa: SIM115 - closed by UploadStream.close
        return cls(path, declared, sha256, handle.tell(), handle, digest)


@dataclass
class UploadStream:
    """One open stream writing the parts of one upload."""

    upload_id: str
    principal: Principal
    manifest: ExpertManifest
    directory: Path
    parts: dict[str, _Part] = field(default_factory=dict)
    closed: bool = False

    def write(self, path: str, offset: int, data: bytes) -> None:
        part = self.parts.get(path)
        if part is None:
            raise ServiceError(
                Code.INVALID_ARGUMENT, f"chunk for {path!r}, which the manifest does not list"
            )
        if len(data) > MAX_CHUNK:
            raise ServiceError(
                Code.INVALID_ARGUMENT, f"chunk of {len(data)} bytes; the limit is {MAX_CHUNK}"
            )
        if offset != part.size:
            raise ServiceError(
                Code.ABORTED,
                f"{path}: chunk at offset {offset}, but {part.size} bytes are stored; "
                f"resume from {part.size}",
            )
        if part.size + len(data) > part.declared:
            raise ServiceError(
                Code.INVALID_ARGUMENT,
                f"{path}: more bytes than the {part.declared} the manifest declares",
            )
        part.handle.write(data)
        part.digest.update(data)
        part.size += len(data)

    def missing(self) -> list[str]:
        return [
            f"{p}: {x.size} of {x.declared} bytes"
            for p, x in self.parts.items()
            if x.size < x.declared
        ]

    def close(self) -> None:
        """Flush and fsync every part, so that what the status reports is durable."""
        if self.closed:
            return
        self.closed = True
        for part in self.parts.values():
            part.handle.flush()
            _fsync(part.handle)
            part.handle.close()


def _fsync(handle: BinaryIO) -> None:
    import os

    os.fsync(handle.fileno())


class UploadService:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        spool: Path,
        limits: Limits,
        max_streams_per_contributor: int = 4,
    ) -> None:
        self.max_streams_per_contributor = max_streams_per_contributor
        self.sessions = sessions
        self.blobs = blobs
        self.spool = Path(spool)
        self.spool.mkdir(parents=True, exist_ok=True)
        self.limits = limits
        self._mutex = threading.Lock()
        self._active: dict[str, UploadStream] = {}

    # -- identity and progress -------------------------------------------------

    @staticmethod
    def upload_id(principal: Principal, manifest: ExpertManifest) -> str:
        return hashlib.sha256(f"{principal.id}:{manifest.digest()}".encode()).hexdigest()[:32]

    def _dir(self, upload_id: str) -> Path:
        return self.spool / upload_id

    def _received(self, upload_id: str, manifest: ExpertManifest) -> dict[str, int]:
        directory = self._dir(upload_id)
        return {f.path: _size(directory / _part_name(i)) for i, f in enumerate(manifest.files)}

    def progress(self, principal: Principal, manifest: ExpertManifest) -> UploadProgress:
        check_manifest(manifest, self.limits)
        upload_id = self.upload_id(principal, manifest)
        with self.sessions() as session:
            row = session.get(Upload, upload_id)
            if row is None:
                return UploadProgress(upload_id, "new", {f.path: 0 for f in manifest.files})
            expert = None
            if row.state == "committed" and row.expert_id:
                expert = experts.to_info(session.get_one(Expert, row.expert_id))
            return UploadProgress(
                upload_id, row.state, self._received(upload_id, manifest), expert, row.error or ""
            )

    # -- opening a stream ------------------------------------------------------

    def open(self, principal: Principal, manifest: ExpertManifest) -> UploadStream | ExpertInfo:
        """A stream to write into, or the pool's identical expert when there is nothing to send."""
        check_manifest(manifest, self.limits)
        upload_id = self.upload_id(principal, manifest)
        with self._mutex:
            if upload_id in self._active:
                raise ServiceError(
                    Code.ABORTED, f"another stream is already sending upload {upload_id}"
                )
            mine = sum(1 for s in self._active.values() if s.principal.id == principal.id)
            if mine >= self.max_streams_per_contributor:
                raise ServiceError(
                    Code.RESOURCE_EXHAUSTED,
                    f"{principal.name!r} already has {mine} uploads in flight; "
                    f"the limit is {self.max_streams_per_contributor}",
                )
            self._active[upload_id] = stream = UploadStream(
                upload_id, principal, manifest, self._dir(upload_id)
            )
        try:
            existing = self._register(principal, manifest, upload_id)
            if existing is not None:
                self._forget(stream)
                return existing
            stream.directory.mkdir(parents=True, exist_ok=True)
            for index, entry in enumerate(manifest.files):
                stream.parts[entry.path] = _Part.open(
                    stream.directory / _part_name(index), entry.size, entry.sha256
                )
            return stream
        except BaseException:
            self.release(stream)
            raise

    def _register(
        self, principal: Principal, manifest: ExpertManifest, upload_id: str
    ) -> ExpertInfo | None:
        with self.sessions.begin() as session:
            check_base(manifest, base_models.get(session, name=manifest.base_model_name))
            existing = _pool_conflicts(session, principal, manifest)
            if existing is not None:
                return existing
            row = session.get(Upload, upload_id)
            if row is None:
                session.add(
                    Upload(
                        id=upload_id,
                        contributor_id=principal.id,
                        manifest=manifest.to_json(),
                        manifest_digest=manifest.digest(),
                        state="receiving",
                    )
                )
                audit.record(
                    session,
                    actor=principal.name,
                    action="upload.start",
                    target=manifest.ref,
                    upload_id=upload_id,
                    bytes=manifest.total_size,
                )
            elif row.state != "receiving":  # failed or abandoned earlier: start over
                shutil.rmtree(self._dir(upload_id), ignore_errors=True)
                row.state, row.error, row.updated_at = "receiving", None, utcnow()
            else:
                row.updated_at = utcnow()
        return None

    def release(self, stream: UploadStream) -> None:
        """End a stream: its bytes stay durable for a later resume."""
        try:
            stream.close()
            with (
                self.sessions.begin() as session
            ):  # before forgetting: the collector skips it until then
                row = session.get(Upload, stream.upload_id)
                if row is not None and row.state == "receiving":
                    row.updated_at = utcnow()
        finally:
            self._forget(stream)

    def _forget(self, stream: UploadStream) -> None:
        with self._mutex:
            if self._active.get(stream.upload_id) is stream:
                del self._active[stream.upload_id]

    def active(self) -> int:
        with self._mutex:
            return len(self._active)

    # -- commit ------------------------------------------------------------------

    def commit(self, stream: UploadStream) -> ExpertInfo:
        """Verify, validate and publish; raises with nothing made visible on any failure."""
        missing = stream.missing()
        if missing:
            raise ServiceError(Code.FAILED_PRECONDITION, "upload incomplete: " + "; ".join(missing))
        stream.close()
        self._verify_hashes(stream)
        try:
            self._validate(stream)
        except ValidationError as exc:
            self._refuse(stream, exc.message)
            raise
        except Exception as exc:  # a validator's own failure still refuses, never wedges the upload
            log.exception("validation of %s failed unexpectedly", stream.manifest.ref)
            message = f"the expert could not be validated ({type(exc).__name__}: {exc})"
            self._refuse(stream, message)
            raise ValidationError(Problem.INVALID, message) from exc
        return self._publish(stream)

    def _verify_hashes(self, stream: UploadStream) -> None:
        for path, part in stream.parts.items():
            actual = part.digest.hexdigest()
            if actual != part.sha256:
                part.path.unlink(missing_ok=True)  # the next attempt sends this file again
                raise ValidationError(
                    Problem.CORRUPT,
                    f"{path}: received bytes hash to {actual[:12]}…, "
                    f"the manifest declares {part.sha256[:12]}…; send the file again",
                )

    def _validate(self, stream: UploadStream) -> None:
        manifest = stream.manifest
        with self.sessions() as session:
            base = base_models.get(session, name=manifest.base_model_name)
        check_base(manifest, base)
        assert base is not None
        config = check_adapter_config(stream.parts[ADAPTER_CONFIG].path, base)
        check_adapter_weights(stream.parts[ADAPTER_WEIGHTS].path, config, base, manifest.lora)
        for entry in manifest.stats:
            check_stats_file(entry.kind, stream.parts[entry.path].path, dict(entry.meta), base)

    def _refuse(self, stream: UploadStream, error: str) -> None:
        shutil.rmtree(stream.directory, ignore_errors=True)
        with self.sessions.begin() as session:
            row = session.get_one(Upload, stream.upload_id)
            row.state, row.error, row.updated_at = "failed", error, utcnow()
            audit.record(
                session,
                actor=stream.principal.name,
                action="upload.refuse",
                target=stream.manifest.ref,
                error=error,
            )

    def _publish(self, stream: UploadStream) -> ExpertInfo:
        manifest = stream.manifest
        arrow = self._arrow(stream)  # before the parts move into the blob store
        blobs = {
            path: self.blobs.put_file(part.path, part.sha256) for path, part in stream.parts.items()
        }
        try:
            with self.sessions.begin() as session:
                info = _insert_expert(session, stream, blobs, arrow)
        except IntegrityError as exc:
            raise ServiceError(
                Code.ALREADY_EXISTS,
                f"expert {manifest.ref} was committed by another upload meanwhile",
            ) from exc
        shutil.rmtree(stream.directory, ignore_errors=True)
        return info

    def _arrow(self, stream: UploadStream) -> ExpertStats:
        """Arrow prototypes, computed here from the validated adapter itself (a contributor's
        own `arrow` statistics, if any, are replaced: routing must not trust them)."""
        from moerge.stats.arrow import KIND, arrow_stats

        data, meta = arrow_stats(
            stream.parts[ADAPTER_CONFIG].path, stream.parts[ADAPTER_WEIGHTS].path
        )
        return ExpertStats(kind=KIND, blob=self.blobs.put_bytes(data), meta=meta)

    # -- garbage collection --------------------------------------------------------

    def collect_garbage(self, older_than: timedelta) -> int:
        """Delete partial uploads untouched for `older_than`; returns how many went.

        The whole pass holds the stream registry's lock, so no stream can open an
        upload between the check that it is idle and the removal of its parts.
        """
        cutoff = utcnow() - older_than
        removed = 0
        with self._mutex, self.sessions.begin() as session:
            stale = session.scalars(
                select(Upload).where(Upload.state == "receiving", Upload.updated_at < cutoff)
            )
            for row in stale:
                if row.id in self._active:
                    continue
                shutil.rmtree(self._dir(row.id), ignore_errors=True)
                row.state, row.updated_at = "abandoned", utcnow()
                audit.record(session, actor="system", action="upload.abandon", target=row.id)
                removed += 1
            receiving = select(Upload.id).where(Upload.state == "receiving")
            busy = set(session.scalars(receiving)) | set(self._active)
            for directory in self.spool.iterdir():
                if directory.name not in busy and directory.stat().st_mtime < cutoff.timestamp():
                    shutil.rmtree(directory, ignore_errors=True)
        return removed


def _part_name(index: int) -> str:
    return f"{index:03d}.part"


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _pool_conflicts(
    session: Session, principal: Principal, manifest: ExpertManifest
) -> ExpertInfo | None:
    """The identical expert already in the pool, or an error when the name or version is taken."""
    same = experts.find(session, name=manifest.name, version=manifest.version)
    if same is not None:
        if same.contributor_id != principal.id:
            raise denied(
                f"expert name {manifest.name!r} belongs to contributor {same.contributor.name!r}"
            )
        if ExpertManifest.from_json(same.manifest).digest() == manifest.digest():
            return experts.to_info(same)
        raise ServiceError(
            Code.ALREADY_EXISTS,
            f"expert {manifest.ref} already exists with different content; "
            "upload it as a new version",
        )
    owner = session.scalar(
        select(Expert)
        .where(Expert.name == manifest.name, Expert.contributor_id != principal.id)
        .limit(1)
    )
    if owner is not None:
        raise denied(
            f"expert name {manifest.name!r} belongs to contributor {owner.contributor.name!r}"
        )
    return None


def _lock_name(session: Session, name: str) -> None:
    """Serialise commits of one expert name, so two contributors cannot both claim it.

    SQLite's BEGIN IMMEDIATE already serialises every writer; PostgreSQL needs a lock,
    since the name's first version has no row to lock yet.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})


def _insert_expert(
    session: Session, stream: UploadStream, blobs: dict[str, str], arrow: ExpertStats
) -> ExpertInfo:
    manifest, principal = stream.manifest, stream.principal
    _lock_name(session, manifest.name)
    existing = _pool_conflicts(session, principal, manifest)
    upload = session.get_one(Upload, stream.upload_id)
    if existing is not None:
        upload.state, upload.expert_id, upload.updated_at = "committed", existing.id, utcnow()
        return existing
    base = session.scalar(
        select(BaseModelEntry).where(BaseModelEntry.name == manifest.base_model_name)
    )
    assert base is not None
    row = Expert(
        id=uuid.uuid4().hex,
        contributor_id=principal.id,
        base_model_id=base.id,
        name=manifest.name,
        version=manifest.version,
        status="active",
        adapter_config_blob=blobs[ADAPTER_CONFIG],
        adapter_weights_blob=blobs[ADAPTER_WEIGHTS],
        size_bytes=manifest.total_size,
        manifest=manifest.to_json(),
        stats=[
            ExpertStats(kind=s.kind, blob=blobs[s.path], meta=dict(s.meta))
            for s in manifest.stats
            if s.kind != arrow.kind
        ]
        + [arrow],
    )
    session.add(row)
    session.flush()
    upload.state, upload.expert_id, upload.updated_at = "committed", row.id, utcnow()
    audit.record(
        session,
        actor=principal.name,
        action="expert.upload",
        target=manifest.ref,
        expert_id=row.id,
        bytes=manifest.total_size,
    )
    session.refresh(row)
    return experts.to_info(row)
