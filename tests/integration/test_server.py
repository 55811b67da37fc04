"""A real coordinator process, called through the generated stubs (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from contributor.client import ClientError, CoordinatorClient
from moerge._proto.v1 import routing_pb2, routing_pb2_grpc
from moerge.experts.manifest import build_manifest, sha256_file
from tests.conftest import TINY_BASE
from tests.support import CoordinatorProcess, CuttingProxy


@pytest.fixture
def alice(coordinator: CoordinatorProcess, request: pytest.FixtureRequest) -> CoordinatorClient:
    name = f"alice-{request.node.name[-40:]}".replace("[", "-").replace("]", "")
    with CoordinatorClient(coordinator.address, coordinator.token(name)) as client:
        yield client


def _unique(request: pytest.FixtureRequest, stem: str) -> str:
    return f"{stem}-{abs(hash(request.node.nodeid)) % 10**8}"


def test_health_is_open_and_everything_else_needs_a_token(coordinator: CoordinatorProcess) -> None:
    channel = grpc.insecure_channel(coordinator.address)
    health = health_pb2_grpc.HealthStub(channel)
    assert (
        health.Check(health_pb2.HealthCheckRequest()).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    routing = routing_pb2_grpc.RoutingServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        routing.Route(routing_pb2.RouteRequest(texts=["x"]))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    channel.close()


def test_round_trip_upload_and_download_keep_every_byte(
    alice: CoordinatorClient, make_expert, tmp_path: Path, request: pytest.FixtureRequest
) -> None:  # type: ignore[no-untyped-def]
    root = make_expert(_unique(request, "roundtrip"))
    result = alice.upload(root)
    assert not result.already_existed and result.expert.status == "active"
    assert result.expert.contributor == alice.whoami().name
    info, path = alice.download(result.expert.manifest.name, "", tmp_path / "out")
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert sha256_file(path / name) == sha256_file(root / name)
    assert info.manifest == build_manifest(root)
    assert (path / "expert.json").is_file()
    fetched = alice.get_expert(info.manifest.name, "1")
    assert fetched.id == result.expert.id


def test_identical_reupload_is_idempotent_and_versions_are_separate(
    alice: CoordinatorClient, make_expert, request: pytest.FixtureRequest
) -> None:  # type: ignore[no-untyped-def]
    name = _unique(request, "versions")
    first = alice.upload(make_expert(name, "1", seed=1))
    again = alice.upload(make_expert(name, "1", seed=1))
    assert again.already_existed and again.expert.id == first.expert.id and again.bytes_sent == 0
    second = alice.upload(make_expert(name, "2", seed=2))
    assert second.expert.id != first.expert.id
    with pytest.raises(ClientError) as info:
        alice.upload(make_expert(name, "1", seed=3))
    assert info.value.code == grpc.StatusCode.ALREADY_EXISTS and "new version" in str(info.value)
    mine = [e for e in alice.list_experts(mine=True) if e.manifest.name == name]
    assert sorted(e.manifest.version for e in mine) == ["1", "2"]
    assert alice.get_expert(name).manifest.version == "2"


def test_missing_wrong_and_revoked_tokens(coordinator: CoordinatorProcess) -> None:
    admin = CoordinatorClient(coordinator.address, coordinator.token("admin-tokens", "admin"))
    token = admin.create_token("victor-tokens")
    with CoordinatorClient(coordinator.address, token) as victor:
        assert victor.whoami().name == "victor-tokens"
        admin.revoke_token("victor-tokens")
        with pytest.raises(ClientError, match="revoked") as info:
            victor.whoami()
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    for bad in ("", "moerge_not-a-token"):
        with (
            CoordinatorClient(coordinator.address, bad) as client,
            pytest.raises(ClientError) as info,
        ):
            client.list_experts()
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    admin.close()


def test_admin_rpcs_need_the_admin_role(alice: CoordinatorClient) -> None:
    with pytest.raises(ClientError) as info:
        alice.create_token("mallory")
    assert info.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_contributors_change_only_their_own_experts(
    coordinator: CoordinatorProcess,
    alice: CoordinatorClient,
    make_expert,
    request: pytest.FixtureRequest,
) -> None:  # type: ignore[no-untyped-def]
    name = _unique(request, "owned")
    root = make_expert(name)
    alice.upload(root)
    with CoordinatorClient(coordinator.address, coordinator.token(_unique(request, "eve"))) as eve:
        assert any(e.manifest.name == name for e in eve.list_experts())  # the pool is readable
        with pytest.raises(ClientError) as info:
            eve.retire(name, "1")
        assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(ClientError) as info:  # nor can it take over the name
            eve.upload(make_expert(name, "2", seed=5))
        assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert alice.get_expert(name, "1").status == "active"
    assert alice.retire(name, "1", "superseded").status == "retired"
    assert all(e.manifest.name != name for e in alice.list_experts())
    assert any(e.manifest.name == name for e in alice.list_experts(include_retired=True))


def test_concurrent_uploads_from_several_clients_all_land(
    coordinator: CoordinatorProcess, make_expert, request: pytest.FixtureRequest
) -> None:  # type: ignore[no-untyped-def]
    stem = _unique(request, "crowd")
    roots = [make_expert(f"{stem}-{i}", rank=16, seed=i) for i in range(6)]
    tokens = [coordinator.token(f"{stem}-c{i}") for i in range(6)]
    results: dict[int, object] = {}

    def upload(i: int) -> None:
        with CoordinatorClient(coordinator.address, tokens[i]) as client:
            try:
                results[i] = client.upload(roots[i])
            except Exception as exc:  # noqa: BLE001 - reported below
                results[i] = exc

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    failures = {i: r for i, r in results.items() if isinstance(r, Exception)}
    assert not failures and len(results) == 6
    with CoordinatorClient(coordinator.address, tokens[0]) as client:
        names = {e.manifest.name for e in client.list_experts()}
    assert {f"{stem}-{i}" for i in range(6)} <= names


def test_a_stream_cut_midway_resumes_without_duplicates(
    coordinator: CoordinatorProcess,
    alice: CoordinatorClient,
    make_expert,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:  # type: ignore[no-untyped-def]
    name = _unique(request, "resumed")
    root = make_expert(name, rank=1024, targets=("query", "key", "value", "dense"))
    size = build_manifest(root).total_size
    assert size > 3 * 1024 * 1024
    proxy = CuttingProxy(coordinator.port, cut_after=size // 2)
    with CoordinatorClient(proxy.address, coordinator.token(_unique(request, "flaky"))) as client:
        result = client.upload(root, backoff=0.1)
    proxy.close()
    assert proxy.cuts == 1 and result.attempts == 2
    assert result.resumed_from > 0, "the second attempt must resume, not start over"
    _, path = alice.download(name, "1", tmp_path / "out")
    assert sha256_file(path / "adapter_model.safetensors") == sha256_file(
        root / "adapter_model.safetensors"
    )
    assert [e.manifest.ref for e in alice.list_experts() if e.manifest.name == name] == [
        f"{name}:1"
    ]


def test_routing_says_it_has_no_router_yet(alice: CoordinatorClient) -> None:
    stub = routing_pb2_grpc.RoutingServiceStub(alice.channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Route(
            routing_pb2.RouteRequest(texts=["hello"], base_model_name=TINY_BASE),
            metadata=alice._metadata,
        )
    # the experts of this module carry no routing statistics, so no router can be learned
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no router for base model" in (info.value.details() or "")


def test_one_contributor_cannot_hold_every_worker(
    coordinator: CoordinatorProcess, make_expert, request: pytest.FixtureRequest
) -> None:  # type: ignore[no-untyped-def]
    """Streams that stall after their manifest count against their contributor's limit (4)."""
    stem = _unique(request, "hog")
    token = coordinator.token(stem)
    proxies = [CuttingProxy(coordinator.port, cut_after=20_000, stall=15) for _ in range(4)]
    threads = []
    for i, proxy in enumerate(proxies):
        root = make_expert(f"{stem}-{i}", rank=64)

        def send(address: str = proxy.address, root: Path = root) -> None:
            with CoordinatorClient(address, token) as client, pytest.raises(ClientError):
                client.upload(root, retries=0)

        threads.append(threading.Thread(target=send))
        threads[-1].start()
    import time

    time.sleep(2.0)  # every stalled stream has delivered its manifest
    with CoordinatorClient(coordinator.address, token) as client:
        with pytest.raises(ClientError) as info:
            client.upload(make_expert(f"{stem}-extra", rank=64), retries=0)
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "the limit is 4" in str(info.value)
    for proxy in proxies:
        proxy.close()
    for thread in threads:
        thread.join(60)
