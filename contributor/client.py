"""A gRPC client of the coordinator, with resumable uploads and verified downloads."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import grpc

from moerge import wire
from moerge._proto.v1 import common_pb2 as common
from moerge._proto.v1 import contributors_pb2 as cpb
from moerge._proto.v1 import contributors_pb2_grpc as cgrpc
from moerge._proto.v1 import experts_pb2 as epb
from moerge._proto.v1 import experts_pb2_grpc as egrpc
from moerge._proto.v1 import routing_pb2 as rpb
from moerge._proto.v1 import routing_pb2_grpc as rgrpc
from moerge.experts.manifest import (
    ExpertInfo,
    ExpertManifest,
    Label,
    build_manifest,
    write_expert_metadata,
)

CHUNK = 1024 * 1024
MAX_MESSAGE = CHUNK + 64 * 1024
# failures after which a resumed upload can still succeed
RESUMABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DATA_LOSS,
}
Progress = Callable[[int, int], None]  # (bytes done, bytes total)


class ClientError(Exception):
    """A call failed; the message is one line naming the status and the problem."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


def _error(exc: grpc.RpcError) -> ClientError:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    name = code.name.lower() if code else "error"
    return ClientError(f"{name}: {details}", code)


@dataclass(frozen=True)
class UploadResult:
    expert: ExpertInfo
    already_existed: bool
    attempts: int
    bytes_sent: int
    # bytes the coordinator already held when the last attempt began
    resumed_from: int = 0


def _labels_pb(labels: Sequence[Label]) -> list[common.Label]:
    return [common.Label(name=x.name, description=x.description) for x in labels]


@dataclass(frozen=True)
class Routed:
    # per text: ([("name:version", weight), ...], abstained)
    routes: list[tuple[list[tuple[str, float]], bool]]
    router_version: str
    method: str


@dataclass(frozen=True)
class Predicted:
    # per text: (label, score, [("name:version", weight), ...]); no experts = the base model
    answers: list[tuple[str, float, list[tuple[str, float]]]]
    router_version: str
    method: str


class CoordinatorClient:
    def __init__(self, address: str, token: str, *, timeout: float = 60.0) -> None:
        self.address = address
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),)
        self.channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
            ],
        )
        self.contributors = cgrpc.ContributorServiceStub(self.channel)
        self.experts = egrpc.ExpertServiceStub(self.channel)
        self.routing = rgrpc.RoutingServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> CoordinatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Callable[..., Any], request: object, **kwargs: object) -> Any:
        try:
            return method(request, metadata=self._metadata, timeout=self.timeout, **kwargs)
        except grpc.RpcError as exc:
            raise _error(exc) from exc

    # -- identity ----------------------------------------------------------------

    def whoami(self) -> cpb.Contributor:
        return self._call(self.contributors.WhoAmI, cpb.WhoAmIRequest())

    def create_token(self, name: str, role: str = "contributor") -> str:
        role_pb = cpb.ROLE_ADMIN if role == "admin" else cpb.ROLE_CONTRIBUTOR
        reply = self._call(
            self.contributors.CreateToken, cpb.CreateTokenRequest(name=name, role=role_pb)
        )
        return reply.token

    def revoke_token(self, name: str) -> None:
        self._call(self.contributors.RevokeToken, cpb.RevokeTokenRequest(name=name))

    # -- the pool ------------------------------------------------------------------

    def list_experts(
        self, *, base_model: str = "", mine: bool = False, include_retired: bool = False
    ) -> list[ExpertInfo]:
        request = epb.ListExpertsRequest(
            base_model_name=base_model, mine=mine, include_retired=include_retired
        )
        reply = self._call(self.experts.ListExperts, request)
        return [wire.expert_from_pb(e) for e in reply.experts]

    def get_expert(self, name: str, version: str = "") -> ExpertInfo:
        return wire.expert_from_pb(
            self._call(self.experts.GetExpert, epb.ExpertRef(name=name, version=version))
        )

    def retire(self, name: str, version: str, reason: str = "") -> ExpertInfo:
        request = epb.RetireExpertRequest(name=name, version=version, reason=reason)
        return wire.expert_from_pb(self._call(self.experts.RetireExpert, request))

    def base_models(self) -> list[tuple[str, str]]:
        reply = self._call(self.experts.ListBaseModels, epb.ListBaseModelsRequest())
        return [(m.name, m.fingerprint) for m in reply.base_models]

    # -- routing -------------------------------------------------------------------

    def route(
        self,
        texts: Sequence[str],
        *,
        labels: Sequence[Label] = (),
        top_k: int = 1,
        base_model: str = "",
    ) -> Routed:
        request = rpb.RouteRequest(
            base_model_name=base_model,
            texts=list(texts),
            candidate_labels=_labels_pb(labels),
            top_k=top_k,
        )
        reply = self._call(self.routing.Route, request)
        routes = [
            ([(f"{w.name}:{w.version}", w.weight) for w in r.experts], r.abstained)
            for r in reply.routes
        ]
        return Routed(routes, reply.router_version, reply.method)

    def predict(
        self,
        texts: Sequence[str],
        labels: Sequence[Label],
        *,
        combination: str = "top1",
        top_k: int = 0,
        base_model: str = "",
    ) -> Predicted:
        request = rpb.PredictRequest(
            base_model_name=base_model,
            texts=list(texts),
            candidate_labels=_labels_pb(labels),
            combination=combination,
            top_k=top_k,
        )
        reply = self._call(self.routing.Predict, request)
        answers = [
            (p.label, p.score, [(f"{w.name}:{w.version}", w.weight) for w in p.experts])
            for p in reply.predictions
        ]
        return Predicted(answers, reply.router_version, reply.method)

    def router(self, base_model: str = "") -> rpb.RouterInfo:
        return self._call(self.routing.GetRouter, rpb.GetRouterRequest(base_model_name=base_model))

    # -- upload --------------------------------------------------------------------

    def upload_status(self, manifest: ExpertManifest) -> epb.UploadStatus:
        request = epb.GetUploadStatusRequest(manifest=wire.manifest_to_pb(manifest))
        return self._call(self.experts.GetUploadStatus, request)

    def upload(
        self,
        expert_dir: Path,
        *,
        progress: Progress | None = None,
        retries: int = 5,
        backoff: float = 0.5,
        **overrides: str | None,
    ) -> UploadResult:
        """Upload an expert directory; a broken stream is resumed where the coordinator's bytes stop."""
        manifest = build_manifest(Path(expert_dir), **overrides)
        return self.upload_files(
            manifest, Path(expert_dir), progress=progress, retries=retries, backoff=backoff
        )

    def upload_files(
        self,
        manifest: ExpertManifest,
        root: Path,
        *,
        progress: Progress | None = None,
        retries: int = 5,
        backoff: float = 0.5,
    ) -> UploadResult:
        """Upload the files a manifest lists, read from `root`, resuming after broken streams."""
        manifest_pb = wire.manifest_to_pb(manifest)
        sent = 0
        for attempt in range(1, retries + 2):
            counter = _Counter(0, manifest.total_size, None)
            try:
                return self._attempt(manifest, manifest_pb, root, attempt, sent, counter, progress)
            except grpc.RpcError as exc:
                sent += counter.sent
                if exc.code() not in RESUMABLE or attempt > retries:
                    raise _error(exc) from exc
            time.sleep(min(backoff * 2 ** (attempt - 1), 10.0))
        raise AssertionError("unreachable")

    def _attempt(
        self,
        manifest: ExpertManifest,
        manifest_pb: Any,
        root: Path,
        attempt: int,
        sent: int,
        counter: _Counter,
        progress: Progress | None,
    ) -> UploadResult:
        """Ask how far the coordinator got, then send the rest; raises grpc.RpcError."""
        request = epb.GetUploadStatusRequest(manifest=manifest_pb)
        status = self.experts.GetUploadStatus(
            request, metadata=self._metadata, timeout=self.timeout
        )
        offsets = {f.path: f.received for f in status.files}
        held = sum(offsets.values())
        if status.state == epb.UPLOAD_STATE_COMMITTED:
            expert = wire.expert_from_pb(status.expert)
            return UploadResult(expert, attempt == 1, attempt, sent, held)
        counter.restart(held, progress)
        reply = self.experts.Upload(
            _requests(manifest_pb, root, manifest, offsets, counter), metadata=self._metadata
        )
        expert = wire.expert_from_pb(reply.expert)
        return UploadResult(expert, reply.already_existed, attempt, sent + counter.sent, held)

    # -- download ------------------------------------------------------------------

    def download(self, name: str, version: str, out_dir: Path) -> tuple[ExpertInfo, Path]:
        """Fetch an expert into out_dir/<name>-<version>/, verifying every file's sha256."""
        stream = self.experts.DownloadExpert(
            epb.ExpertRef(name=name, version=version), metadata=self._metadata
        )
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".download-"))
        try:
            info = _receive(stream, staging)
            target = out_dir / f"{info.manifest.name}-{info.manifest.version}"
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
            return info, target
        except grpc.RpcError as exc:
            raise _error(exc) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class _Counter:
    def __init__(self, start: int, total: int, progress: Progress | None) -> None:
        self.done, self.total, self.sent, self.progress = start, total, 0, progress

    def restart(self, start: int, progress: Progress | None) -> None:
        self.done, self.progress = start, progress
        if progress:
            progress(start, self.total)

    def add(self, n: int) -> None:
        self.done += n
        self.sent += n
        if self.progress:
            self.progress(self.done, self.total)


def _requests(
    manifest_pb: Any,
    root: Path,
    manifest: ExpertManifest,
    offsets: dict[str, int],
    counter: _Counter,
) -> Iterator[epb.UploadRequest]:
    yield epb.UploadRequest(manifest=manifest_pb)
    for entry in manifest.files:
        offset = offsets.get(entry.path, 0)
        with open(root / entry.path, "rb") as handle:
            handle.seek(offset)
            while offset < entry.size and (data := handle.read(min(CHUNK, entry.size - offset))):
                yield epb.UploadRequest(
                    chunk=epb.FileChunk(path=entry.path, offset=offset, data=data)
                )
                offset += len(data)
                counter.add(len(data))


def _safe(path: str) -> bool:
    """Only an expert's own file names: nothing absolute, nothing that climbs out."""
    parts = Path(path).parts
    return bool(parts) and not Path(path).is_absolute() and ".." not in parts and len(parts) <= 2


def _receive(stream: Iterator[epb.DownloadResponse], staging: Path) -> ExpertInfo:
    first = next(stream)
    if not first.HasField("expert"):
        raise ClientError("download: the coordinator did not send the expert first")
    info = wire.expert_from_pb(first.expert)
    handles: dict[str, BinaryIO] = {}
    digests = {f.path: hashlib.sha256() for f in info.manifest.files}
    try:
        for message in stream:
            chunk = message.chunk
            if chunk.path not in digests or not _safe(chunk.path):
                raise ClientError(f"download: unexpected file {chunk.path!r}")
            if chunk.path not in handles:
                (staging / chunk.path).parent.mkdir(parents=True, exist_ok=True)
                handles[chunk.path] = open(staging / chunk.path, "wb")  # noqa: SIM115
            handles[chunk.path].write(chunk.data)
            digests[chunk.path].update(chunk.data)
    finally:
        for handle in handles.values():
            handle.close()
    for entry in info.manifest.files:
        if digests[entry.path].hexdigest() != entry.sha256:
            raise ClientError(f"download: {entry.path} does not match its sha256; try again")
    m = info.manifest
    write_expert_metadata(
        staging,
        {
            "name": m.name,
            "version": m.version,
            "contributor": info.contributor,
            "base_model": {"name": m.base_model_name, "fingerprint": m.base_model_fingerprint},
            "task_description": m.task_description,
            "license": m.license,
            "labels": [{"name": x.name, "description": x.description} for x in m.labels],
        },
    )
    for stats in m.stats:
        if stats.meta and stats.path in digests and _safe(stats.path):
            (staging / stats.path).with_suffix(".json").write_text(json.dumps(stats.meta, indent=2))
    return info
