"""The gating job: learn a global router over the active pool of a base model.

The job reads each active expert's routing statistics and label descriptions
from the registry (never any raw data), fits the configured routing method,
stores the serialised router as a blob and records it as a new router version,
swapped in atomically. A scheduler thread runs it when the pool changes and,
optionally, on a period.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from safetensors.numpy import load
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coordinator.blobs import BlobStore
from coordinator.registry.models import BaseModelEntry, Expert, Job, utcnow
from coordinator.runtime import Runtimes
from coordinator.services import routers
from coordinator.services.errors import Code, ServiceError
from moerge.experts.manifest import Label
from moerge.routing import ExpertProfile, create, serialize
from moerge.stats.files import moments_from_bytes
from moerge.stats.moments import KIND

log = logging.getLogger("moerge.coordinator.gating")


@dataclass(frozen=True)
class _Member:
    expert_id: str
    ref: str
    label_descriptions: tuple[str, ...]
    stats_blob: str
    stats_meta: dict[str, Any]
    examples_blob: str | None = None  # the opt-in `examples` statistics, for retrieval


def _members(session: Session, base_model_name: str) -> tuple[list[_Member], list[str]]:
    """The active experts that carry routing statistics, and the refs of those that do not."""
    members, skipped = [], []
    for row in routers.pool(session, base_model_name=base_model_name):
        ref = f"{row.name}:{row.version}"
        stats = next((s for s in row.stats if s.kind == KIND), None)
        if stats is None:
            skipped.append(ref)
            continue
        labels = tuple(
            Label(x["name"], x["description"]).text for x in row.manifest.get("labels", [])
        )
        examples = next((s.blob for s in row.stats if s.kind == "examples"), None)
        members.append(_Member(row.id, ref, labels, stats.blob, dict(stats.meta), examples))
    return members, skipped


class GatingJob:
    """One run = one new router version for one base model."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        runtimes: Runtimes,
        *,
        method: str = "gaussian",
        seed: int = 0,
    ) -> None:
        self.sessions = sessions
        self.blobs = blobs
        self.runtimes = runtimes
        self.method = method
        self.seed = seed
        self._lock = threading.Lock()

    def _profiles(self, base_model_name: str, members: list[_Member]) -> list[ExpertProfile]:
        experts = self.runtimes.experts(base_model_name)
        profiles = []
        for m in members:
            moments = moments_from_bytes(self.blobs.read_bytes(m.stats_blob), m.stats_meta)
            labels = (
                experts.embed(list(m.label_descriptions), None)
                if m.label_descriptions
                else np.zeros((0, moments.dim), dtype=np.float32)
            )
            examples = None
            if m.examples_blob is not None:
                examples = load(self.blobs.read_bytes(m.examples_blob))["embeddings"]
            profiles.append(
                ExpertProfile(
                    ref=m.ref, moments=moments, label_embeddings=labels, examples=examples
                )
            )
        return profiles

    def run(
        self, base_model_name: str, *, method: str | None = None, reason: str, actor: str = "system"
    ) -> routers.RouterView:
        """Fit, store and activate a new router; the Job row records how it went."""
        method = method or self.method
        with self._lock:
            with self.sessions.begin() as session:
                base = session.scalar(
                    select(BaseModelEntry).where(BaseModelEntry.name == base_model_name)
                )
                if base is None:
                    raise ServiceError(Code.NOT_FOUND, f"no base model named {base_model_name!r}")
                job = Job(
                    kind="gating",
                    state="running",
                    base_model_id=base.id,
                    params={"method": method, "reason": reason, "seed": self.seed},
                    started_at=utcnow(),
                )
                session.add(job)
                session.flush()
                job_id = job.id
                members, skipped = _members(session, base_model_name)
            try:
                view = self._fit_and_record(base_model_name, method, members, skipped, actor)
            except Exception as exc:
                self._finish(job_id, "failed", error=str(exc))
                raise
            self._finish(job_id, "succeeded", result={"router_version": view.version})
            return view

    def _fit_and_record(
        self,
        base_model_name: str,
        method: str,
        members: list[_Member],
        skipped: list[str],
        actor: str,
    ) -> routers.RouterView:
        if not members:
            raise ServiceError(
                Code.FAILED_PRECONDITION,
                f"no active expert of {base_model_name!r} has {KIND} statistics to route with",
            )
        started = time.perf_counter()
        router = create(method)
        metrics: dict[str, Any] = dict(
            router.fit(self._profiles(base_model_name, members), seed=self.seed)
        )
        metrics.update(
            experts=len(members),
            experts_without_stats=skipped,
            fit_seconds=round(time.perf_counter() - started, 3),
        )
        blob = self.blobs.put_bytes(serialize.dumps(router))
        with self.sessions.begin() as session:
            view = routers.record(
                session,
                base_model_name=base_model_name,
                method=method,
                expert_ids=[m.expert_id for m in members],
                metrics=metrics,
                blob=blob,
                actor=actor,
            )
        log.info(
            "router %s/%d (%s) over %d experts in %.1f s",
            base_model_name,
            view.version,
            method,
            len(members),
            metrics["fit_seconds"],
        )
        return view

    def _finish(self, job_id: int, state: str, **fields: Any) -> None:
        with self.sessions.begin() as session:
            job = session.get(Job, job_id)
            if job is not None:
                job.state = state
                job.finished_at = utcnow()
                job.result = fields.get("result")
                job.error = fields.get("error")

    def is_stale(self, base_model_name: str) -> bool:
        """Whether the active router differs from what the job would train now."""
        with self.sessions() as session:
            members, _ = _members(session, base_model_name)
            current = routers.active(session, base_model_name=base_model_name)
        if not members:
            return False
        if current is None:
            return True
        wanted = sorted(m.expert_id for m in members)
        return current.method != self.method or sorted(current.expert_ids) != wanted


class GatingScheduler:
    """Runs the gating job after pool changes (debounced) and, optionally, on a period."""

    def __init__(
        self,
        job: GatingJob,
        *,
        every_seconds: float = 0.0,
        delay_seconds: float = 2.0,
    ) -> None:
        self.job = job
        self.every = every_seconds
        self.delay = delay_seconds
        self._dirty: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gating", daemon=True)
        self.runs = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def pool_changed(self, base_model_name: str) -> None:
        self._dirty.add(base_model_name)
        self._wake.set()

    def _loop(self) -> None:
        self._dirty.update(self._bases())  # catch up with changes made while stopped
        self._wake.set()
        while not self._stop.is_set():
            woke = self._wake.wait(self.every if self.every > 0 else None)
            if self._stop.is_set():
                return
            if woke:
                self._stop.wait(self.delay)  # let a burst of uploads settle
            self._wake.clear()
            names, self._dirty = set(self._dirty), set()
            if not woke:
                names = set(self._bases())
            for name in sorted(names):
                self._run_once(name)

    def _run_once(self, name: str) -> None:
        try:
            if self.job.is_stale(name):
                self.job.run(name, reason="schedule")
                self.runs += 1
        except Exception:  # noqa: BLE001 - one failed run must not stop the scheduler
            log.exception("gating job for %s failed", name)

    def _bases(self) -> list[str]:
        with self.job.sessions() as session:
            query = select(BaseModelEntry.name).join(Expert).where(Expert.status == "active")
            return sorted(set(session.scalars(query)))
