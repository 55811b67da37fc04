"""The coordinator process: registry, blob store, upload service and gRPC server."""

from __future__ import annotations

import logging
import threading
import time
from concurrent import futures
from datetime import timedelta

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from coordinator.api.interceptor import AuthInterceptor
from coordinator.api.servicers import (
    ADMIN_METHODS,
    ContributorServicer,
    ExpertServicer,
    RoutingServicer,
)
from coordinator.blobs import BlobStore
from coordinator.gating import GatingJob, GatingScheduler
from coordinator.registry import migrate
from coordinator.registry.db import make_engine, session_factory
from coordinator.runtime import Runtimes
from coordinator.services import base_models, contributors
from coordinator.services.contributors import Principal
from coordinator.services.routing import RoutingService
from coordinator.services.uploads import MAX_CHUNK, UploadService
from coordinator.settings import Settings
from moerge._proto.v1 import (
    contributors_pb2,
    contributors_pb2_grpc,
    experts_pb2,
    experts_pb2_grpc,
    routing_pb2,
    routing_pb2_grpc,
)
from moerge.models import DEFAULT_BASE_MODEL, default_base_model_path, describe

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    contributors_pb2.DESCRIPTOR.services_by_name["ContributorService"].full_name,
    experts_pb2.DESCRIPTOR.services_by_name["ExpertService"].full_name,
    routing_pb2.DESCRIPTOR.services_by_name["RoutingService"].full_name,
)
# room for a 1 MiB chunk plus its envelope
MAX_MESSAGE = MAX_CHUNK + 64 * 1024


class SchemaError(RuntimeError):
    """The registry's schema is not at the revision this coordinator needs."""


def prepare_database(settings: Settings, *, migrate_schema: bool = True) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if migrate.is_current(settings.url):
        return
    if not migrate_schema:
        raise SchemaError(
            f"the registry at {settings.url} is at revision {migrate.current(settings.url)}, "
            f"not {migrate.head()}: run `moerge-coordinator migrate`"
        )
    migrate.upgrade(settings.url)


class Coordinator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.url)
        self.sessions = session_factory(self.engine)
        self.blobs = BlobStore(settings.blob_dir)
        self.uploads = UploadService(
            sessions=self.sessions,
            blobs=self.blobs,
            spool=settings.spool_dir,
            limits=settings.limits,
            max_streams_per_contributor=settings.max_streams_per_contributor,
        )
        self.runtimes = Runtimes(
            self.sessions,
            self.blobs,
            settings.expert_cache_dir,
            capacity=settings.expert_cache_size,
        )
        self.routing = RoutingService(self.sessions, self.blobs, self.runtimes)
        self.gating = GatingJob(
            self.sessions, self.blobs, self.runtimes, method=settings.router_method
        )
        self.scheduler = GatingScheduler(
            self.gating,
            every_seconds=settings.retrain_every_seconds,
            delay_seconds=settings.retrain_delay_seconds,
        )
        self.health = health.HealthServicer()
        self.server: grpc.Server | None = None
        self.port = 0
        self._stopping = threading.Event()
        self._gc_thread: threading.Thread | None = None

    def authenticate(self, token: str | None) -> Principal:
        with self.sessions() as session:
            return contributors.authenticate(session, token=token)

    def register_default_base_model(self) -> None:
        with self.sessions() as session:
            if base_models.get(session, name=DEFAULT_BASE_MODEL) is not None:
                return
        log.info("registering the default base model %s", DEFAULT_BASE_MODEL)
        spec = describe(default_base_model_path(), DEFAULT_BASE_MODEL)
        with self.sessions.begin() as session:
            base_models.register(session, spec=spec, actor="system")

    def start(self) -> int:
        if self.settings.default_base_model:
            self.register_default_base_model()
        server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=self.settings.max_workers, thread_name_prefix="rpc"
            ),
            interceptors=[AuthInterceptor(self.authenticate, ADMIN_METHODS)],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
            ],
        )
        contributors_pb2_grpc.add_ContributorServiceServicer_to_server(
            ContributorServicer(self.sessions), server
        )
        experts_pb2_grpc.add_ExpertServiceServicer_to_server(
            ExpertServicer(self.sessions, self.blobs, self.uploads, self._pool_changed), server
        )
        routing_pb2_grpc.add_RoutingServiceServicer_to_server(
            RoutingServicer(self.sessions, self.routing), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        self.port = server.add_insecure_port(f"{self.settings.grpc_host}:{self.settings.grpc_port}")
        if self.port == 0:
            raise OSError(f"cannot listen on {self.settings.grpc_host}:{self.settings.grpc_port}")
        server.start()
        self.server = server
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._gc_thread = threading.Thread(
            target=self._collect_garbage, name="upload-gc", daemon=True
        )
        self._gc_thread.start()
        threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()
        if self.settings.retrain_on_change or self.settings.retrain_every_seconds > 0:
            self.scheduler.start()
        return self.port

    def _pool_changed(self, base_model_name: str) -> None:
        if self.settings.retrain_on_change:
            self.scheduler.pool_changed(base_model_name)

    def _collect_garbage(self) -> None:
        ttl = timedelta(seconds=self.settings.upload_ttl_seconds)
        while not self._stopping.is_set():
            try:
                removed = self.uploads.collect_garbage(ttl)
                if removed:
                    log.info("removed %d abandoned partial uploads", removed)
            except Exception:  # noqa: BLE001 - the collector must outlive one failed pass
                log.exception("garbage collection of uploads failed")
            self._stopping.wait(self.settings.gc_interval_seconds)

    def stop(self, grace: float | None = None) -> None:
        """Stop taking calls, let in-flight ones finish within `grace`, abort the rest cleanly."""
        if self.server is None or self._stopping.is_set():
            return
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        deadline = time.monotonic() + 10
        while self.uploads.active() and time.monotonic() < deadline:
            time.sleep(0.05)  # aborted uploads are flushing their parts
        if self._gc_thread is not None:
            self._gc_thread.join(timeout=5)
        self.scheduler.stop()
        self.engine.dispose()

    def wait(self) -> None:
        assert self.server is not None
        self.server.wait_for_termination()


def _warm_up() -> None:
    """Import what validation needs now, so the first upload does not pay for it."""
    try:
        import peft  # noqa: F401
        import safetensors.torch  # noqa: F401
    except Exception:  # noqa: BLE001 - only an optimisation
        log.debug("warm-up import failed", exc_info=True)
