"""Route and predict with the active router of a base model.

Every call looks up the id of the active router (one indexed query); when the
gating job, in this process or another, has swapped in a new version, the new
router is loaded and replaces the old one with a single reference assignment.
A call works from one snapshot throughout, so its answer always names the
router version that produced it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from coordinator.blobs import BlobStore
from coordinator.runtime import Runtimes
from coordinator.services import routers
from coordinator.services.errors import Code, ServiceError
from moerge.combine import COMBINATIONS, Combination, Prediction
from moerge.combine import get as get_combination
from moerge.experts.manifest import Label
from moerge.models import DEFAULT_BASE_MODEL
from moerge.routing import Router, Routing, RoutingQuery, serialize

MAX_TEXTS = 512
MAX_TEXT_CHARS = 20_000
MAX_LABELS = 256


@dataclass(frozen=True)
class ActiveRouter:
    id: int
    base_model_name: str
    version: int
    method: str
    router: Router


def _no_router(base: str) -> ServiceError:
    return ServiceError(
        Code.FAILED_PRECONDITION,
        f"no router for base model {base!r} yet: the gating job runs once experts with "
        "routing statistics are uploaded (or run `moerge-coordinator train-router`)",
    )


def _check_texts(texts: Sequence[str]) -> list[str]:
    if not texts:
        raise ServiceError(Code.INVALID_ARGUMENT, "no texts to route")
    if len(texts) > MAX_TEXTS:
        raise ServiceError(Code.INVALID_ARGUMENT, f"at most {MAX_TEXTS} texts per call")
    for i, text in enumerate(texts):
        if not text.strip():
            raise ServiceError(Code.INVALID_ARGUMENT, f"text {i} is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise ServiceError(
                Code.INVALID_ARGUMENT, f"text {i} is longer than {MAX_TEXT_CHARS} characters"
            )
    return list(texts)


def _check_labels(labels: Sequence[Label], *, required: bool) -> list[Label]:
    if required and len(labels) < 2:
        raise ServiceError(Code.INVALID_ARGUMENT, "predict needs at least two candidate labels")
    if len(labels) > MAX_LABELS:
        raise ServiceError(Code.INVALID_ARGUMENT, f"at most {MAX_LABELS} candidate labels")
    names = [x.name for x in labels]
    if any(not n.strip() for n in names):
        raise ServiceError(Code.INVALID_ARGUMENT, "every candidate label needs a name")
    if len(set(names)) != len(names):
        raise ServiceError(Code.INVALID_ARGUMENT, "candidate label names must be unique")
    return list(labels)


class RoutingService:
    def __init__(self, sessions: sessionmaker[Session], blobs: BlobStore, runtimes: Runtimes):
        self.sessions = sessions
        self.blobs = blobs
        self.runtimes = runtimes
        self._active: dict[str, ActiveRouter] = {}
        self._load_lock = threading.Lock()

    def current(self, base_model_name: str) -> ActiveRouter:
        """The active router, reloaded when a new version has been swapped in."""
        base = base_model_name or DEFAULT_BASE_MODEL
        with self.sessions() as session:
            router_id = routers.active_id(session, base_model_name=base)
            if router_id is None:
                routers.active(session, base_model_name=base)  # NOT_FOUND for an unknown base
                raise _no_router(base)
        cached = self._active.get(base)
        if cached is not None and cached.id == router_id:
            return cached
        with self._load_lock:
            cached = self._active.get(base)
            if cached is not None and cached.id == router_id:
                return cached
            with self.sessions() as session:
                view = routers.active(session, base_model_name=base)
            if view is None:
                raise _no_router(base)
            loaded = ActiveRouter(
                view.id,
                base,
                view.version,
                view.method,
                serialize.loads(self.blobs.read_bytes(view.blob)),
            )
            self._active[base] = loaded
            return loaded

    def _query(self, base: str, texts: list[str], labels: list[Label]) -> RoutingQuery:
        experts = self.runtimes.experts(base)
        label_emb = experts.embed([x.text for x in labels], None) if labels else None
        return RoutingQuery(texts=experts.embed(texts, None), labels=label_emb)

    def route(
        self, *, base_model_name: str, texts: Sequence[str], labels: Sequence[Label], top_k: int
    ) -> tuple[ActiveRouter, Routing]:
        texts = _check_texts(texts)
        labels = _check_labels(labels, required=False)
        active = self.current(base_model_name)
        k = _top_k(top_k or 1, active)
        return active, active.router.route(self._query(active.base_model_name, texts, labels), k)

    def predict(
        self,
        *,
        base_model_name: str,
        texts: Sequence[str],
        labels: Sequence[Label],
        combination: str,
        top_k: int,
    ) -> tuple[ActiveRouter, Prediction]:
        texts = _check_texts(texts)
        labels = _check_labels(labels, required=True)
        name = combination or "top1"
        served = sorted(n for n, cls in COMBINATIONS.items() if issubclass(cls, Combination))
        if name not in served:
            why = (
                f"{name!r} mixes experts per token, which needs a per-token router (arrow, "
                "phatgoose); the coordinator serves per-input routers"
                if name in COMBINATIONS
                else f"unknown combination {name!r}"
            )
            raise ServiceError(Code.INVALID_ARGUMENT, f"{why} (served: {', '.join(served)})")
        combine = get_combination(name)()
        active = self.current(base_model_name)
        k = _top_k(combine.top_k(top_k), active)
        base = active.base_model_name
        routing = active.router.route(self._query(base, texts, labels), k)
        prediction = combine.predict(
            self.runtimes.experts(base),
            active.router.experts,
            routing.weights,
            np.asarray(routing.abstained, dtype=bool),
            texts,
            [x.text for x in labels],
        )
        return active, prediction


def _top_k(k: int, active: ActiveRouter) -> int:
    n = len(active.router.experts)
    if k < 1:
        raise ServiceError(Code.INVALID_ARGUMENT, "top_k must be at least 1")
    return min(k, n)
