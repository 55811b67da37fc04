"""gRPC servicers: unpack the request, call one service, pack the answer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import grpc
from sqlalchemy.orm import Session, sessionmaker

from coordinator.api.interceptor import principal
from coordinator.blobs import BlobStore
from coordinator.services import base_models, contributors, experts, routers
from coordinator.services.errors import Code, ServiceError
from coordinator.services.routing import RoutingService
from coordinator.services.uploads import MAX_CHUNK, UploadService
from moerge import wire
from moerge._proto.v1 import common_pb2 as common
from moerge._proto.v1 import contributors_pb2 as cpb
from moerge._proto.v1 import contributors_pb2_grpc as cgrpc
from moerge._proto.v1 import experts_pb2 as epb
from moerge._proto.v1 import experts_pb2_grpc as egrpc
from moerge._proto.v1 import routing_pb2 as rpb
from moerge._proto.v1 import routing_pb2_grpc as rgrpc
from moerge.experts.manifest import ExpertInfo, Label
from moerge.models import DEFAULT_BASE_MODEL

ROLE_TO_PB = {"contributor": cpb.ROLE_CONTRIBUTOR, "admin": cpb.ROLE_ADMIN}
ROLE_FROM_PB = {v: k for k, v in ROLE_TO_PB.items()}
STATE_TO_PB = {
    "new": epb.UPLOAD_STATE_NEW,
    "receiving": epb.UPLOAD_STATE_RECEIVING,
    "committed": epb.UPLOAD_STATE_COMMITTED,
    "failed": epb.UPLOAD_STATE_FAILED,
    "abandoned": epb.UPLOAD_STATE_ABANDONED,
}
ADMIN_METHODS = {
    "/moerge.v1.ContributorService/CreateToken",
    "/moerge.v1.ContributorService/RevokeToken",
    "/moerge.v1.ContributorService/ListContributors",
}


def _contributor_pb(view: contributors.ContributorView) -> cpb.Contributor:
    msg = cpb.Contributor(
        name=view.name,
        role=ROLE_TO_PB[view.role],
        revoked=view.revoked,
        active_experts=view.active_experts,
    )
    msg.created_at.FromDatetime(view.created_at)
    return msg


class ContributorServicer(cgrpc.ContributorServiceServicer):
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def WhoAmI(self, request: cpb.WhoAmIRequest, context: grpc.ServicerContext) -> cpb.Contributor:
        with self.sessions() as session:
            return _contributor_pb(contributors.describe(session, principal=principal()))

    def CreateToken(
        self, request: cpb.CreateTokenRequest, context: grpc.ServicerContext
    ) -> cpb.CreateTokenResponse:
        role = ROLE_FROM_PB.get(request.role, "contributor")
        with self.sessions.begin() as session:
            view, token = contributors.create(
                session, name=request.name, role=role, actor=principal().name
            )
        return cpb.CreateTokenResponse(contributor=_contributor_pb(view), token=token)

    def RevokeToken(
        self, request: cpb.RevokeTokenRequest, context: grpc.ServicerContext
    ) -> cpb.Contributor:
        with self.sessions.begin() as session:
            return _contributor_pb(
                contributors.revoke(session, name=request.name, actor=principal().name)
            )

    def ListContributors(
        self, request: cpb.ListContributorsRequest, context: grpc.ServicerContext
    ) -> cpb.ListContributorsResponse:
        with self.sessions() as session:
            return cpb.ListContributorsResponse(
                contributors=[_contributor_pb(v) for v in contributors.list_all(session)]
            )


class ExpertServicer(egrpc.ExpertServiceServicer):
    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        uploads: UploadService,
        on_pool_change: Callable[[str], None] = lambda base: None,
    ) -> None:
        self.sessions = sessions
        self.blobs = blobs
        self.uploads = uploads
        self.on_pool_change = on_pool_change

    def Upload(
        self, request_iterator: Iterator[epb.UploadRequest], context: grpc.ServicerContext
    ) -> epb.UploadResponse:
        first = next(request_iterator, None)
        if first is None or not first.HasField("manifest"):
            raise ServiceError(
                Code.INVALID_ARGUMENT, "an upload must start with the expert's manifest"
            )
        manifest = wire.manifest_from_pb(first.manifest)
        caller = principal()
        upload_id = self.uploads.upload_id(caller, manifest)
        opened = self.uploads.open(caller, manifest)
        if isinstance(opened, ExpertInfo):
            return epb.UploadResponse(
                expert=wire.expert_to_pb(opened), already_existed=True, upload_id=upload_id
            )
        try:
            for request in request_iterator:
                if not request.HasField("chunk"):
                    raise ServiceError(Code.INVALID_ARGUMENT, "the manifest may be sent only once")
                opened.write(request.chunk.path, request.chunk.offset, request.chunk.data)
            info = self.uploads.commit(opened)
        finally:
            self.uploads.release(opened)
        self.on_pool_change(info.manifest.base_model_name)
        return epb.UploadResponse(expert=wire.expert_to_pb(info), upload_id=upload_id)

    def GetUploadStatus(
        self, request: epb.GetUploadStatusRequest, context: grpc.ServicerContext
    ) -> epb.UploadStatus:
        manifest = wire.manifest_from_pb(request.manifest)
        progress = self.uploads.progress(principal(), manifest)
        sizes = {f.path: f.size for f in manifest.files}
        msg = epb.UploadStatus(
            upload_id=progress.upload_id,
            state=STATE_TO_PB[progress.state],
            error=progress.error,
            files=[
                epb.FileProgress(path=p, received=n, size=sizes[p])
                for p, n in progress.received.items()
            ],
        )
        if progress.expert is not None:
            msg.expert.CopyFrom(wire.expert_to_pb(progress.expert))
        return msg

    def ListExperts(
        self, request: epb.ListExpertsRequest, context: grpc.ServicerContext
    ) -> epb.ListExpertsResponse:
        with self.sessions() as session:
            infos = experts.list_experts(
                session,
                principal=principal(),
                base_model_name=request.base_model_name,
                include_retired=request.include_retired,
                mine=request.mine,
            )
        return epb.ListExpertsResponse(experts=[wire.expert_to_pb(i) for i in infos])

    def GetExpert(self, request: epb.ExpertRef, context: grpc.ServicerContext) -> common.Expert:
        with self.sessions() as session:
            row = experts.get(session, name=request.name, version=request.version)
            return wire.expert_to_pb(experts.to_info(row))

    def DownloadExpert(
        self, request: epb.ExpertRef, context: grpc.ServicerContext
    ) -> Iterator[epb.DownloadResponse]:
        with self.sessions() as session:
            row = experts.get(session, name=request.name, version=request.version)
            info = experts.to_info(row)
            files = [(f.path, experts.blob_of(row, f.path)) for f in info.manifest.files]
        yield epb.DownloadResponse(expert=wire.expert_to_pb(info))
        for path, blob in files:
            offset = 0
            try:
                for data in self.blobs.iter_chunks(blob, MAX_CHUNK):
                    yield epb.DownloadResponse(
                        chunk=epb.FileChunk(path=path, offset=offset, data=data)
                    )
                    offset += len(data)
            except Exception as exc:  # a missing or corrupt blob is never served as good
                raise ServiceError(Code.DATA_LOSS, f"{info.manifest.ref}/{path}: {exc}") from exc

    def RetireExpert(
        self, request: epb.RetireExpertRequest, context: grpc.ServicerContext
    ) -> common.Expert:
        with self.sessions.begin() as session:
            info = experts.retire(
                session,
                principal=principal(),
                name=request.name,
                version=request.version,
                reason=request.reason,
            )
        self.on_pool_change(info.manifest.base_model_name)
        return wire.expert_to_pb(info)

    def ListBaseModels(
        self, request: epb.ListBaseModelsRequest, context: grpc.ServicerContext
    ) -> epb.ListBaseModelsResponse:
        with self.sessions() as session:
            models = base_models.list_all(session)
        out = []
        for spec, created in models:
            msg = common.BaseModel(
                name=spec.name,
                fingerprint=spec.fingerprint,
                hidden_size=spec.hidden_size,
                linear_modules=sorted(spec.linear_modules),
            )
            msg.created_at.FromDatetime(created)
            out.append(msg)
        return epb.ListBaseModelsResponse(base_models=out)


def _labels(msgs: Iterator[common.Label] | list[common.Label]) -> list[Label]:
    return [Label(x.name, x.description) for x in msgs]


def _weights(pairs: list[tuple[str, float]]) -> list[rpb.ExpertWeight]:
    out = []
    for ref, weight in pairs:
        name, _, version = ref.partition(":")
        out.append(rpb.ExpertWeight(name=name, version=version, weight=weight))
    return out


class RoutingServicer(rgrpc.RoutingServiceServicer):
    """Route and predict with the active router; both answer for a batch of texts."""

    def __init__(self, sessions: sessionmaker[Session], service: RoutingService) -> None:
        self.sessions = sessions
        self.service = service

    def Route(self, request: rpb.RouteRequest, context: grpc.ServicerContext) -> rpb.RouteResponse:
        active, routing = self.service.route(
            base_model_name=request.base_model_name,
            texts=list(request.texts),
            labels=_labels(list(request.candidate_labels)),
            top_k=request.top_k,
        )
        refs = active.router.experts
        routes = [
            rpb.Routing(
                experts=_weights([(refs[e], w) for e, w in routing.chosen(i)]),
                abstained=bool(routing.abstained[i]),
            )
            for i in range(len(request.texts))
        ]
        return rpb.RouteResponse(
            routes=routes, router_version=str(active.version), method=active.method
        )

    def Predict(
        self, request: rpb.PredictRequest, context: grpc.ServicerContext
    ) -> rpb.PredictResponse:
        labels = _labels(list(request.candidate_labels))
        active, prediction = self.service.predict(
            base_model_name=request.base_model_name,
            texts=list(request.texts),
            labels=labels,
            combination=request.combination,
            top_k=request.top_k,
        )
        out = []
        for i, best in enumerate(prediction.labels):
            out.append(
                rpb.Prediction(
                    label=labels[int(best)].name,
                    score=float(prediction.probs[i, best]),
                    experts=_weights(prediction.experts[i]),
                )
            )
        return rpb.PredictResponse(
            predictions=out, router_version=str(active.version), method=active.method
        )

    def GetRouter(
        self, request: rpb.GetRouterRequest, context: grpc.ServicerContext
    ) -> rpb.RouterInfo:
        base = request.base_model_name or DEFAULT_BASE_MODEL
        with self.sessions() as session:
            view = routers.active(session, base_model_name=base)
        if view is None:
            raise ServiceError(Code.NOT_FOUND, f"no router for base model {base!r} yet")
        info = rpb.RouterInfo(
            base_model_name=base,
            version=str(view.version),
            method=view.method,
            experts=list(view.experts),
            metrics_json=json.dumps(view.metrics, sort_keys=True),
        )
        info.created_at.FromDatetime(view.created_at)
        return info
