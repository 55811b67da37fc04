"""Restarts, shutdowns and garbage collection with uploads in flight, on both backends."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import grpc
import pytest

from contributor.client import ClientError, CoordinatorClient
from moerge._proto.v1 import experts_pb2 as epb
from moerge.experts.manifest import build_manifest, sha256_file
from tests.conftest import BACKENDS, new_database, register_base
from tests.support import CoordinatorProcess, CuttingProxy

BIG = {"rank": 1024, "targets": ("query", "key", "value", "dense")}


@pytest.fixture(params=BACKENDS)
def setup(request: pytest.FixtureRequest, templates, tmp_path: Path, tiny_base):  # type: ignore[no-untyped-def]
    with new_database(request.param, templates, tmp_path) as url:
        register_base(url, tiny_base[1])
        yield url, tmp_path / "data"


def _half_upload(process: CoordinatorProcess, token: str, root: Path) -> int:
    """Send about half of an expert, then lose the connection; returns the bytes the coordinator kept."""
    manifest = build_manifest(root)
    proxy = CuttingProxy(process.port, cut_after=manifest.total_size // 2)
    with CoordinatorClient(proxy.address, token) as client, pytest.raises(ClientError) as info:
        client.upload(root, retries=0)
    proxy.close()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    with CoordinatorClient(process.address, token) as client:
        for _ in range(100):  # the coordinator notices the broken stream and flushes
            status = client.upload_status(manifest)
            if status.upload_id and sum(f.received for f in status.files) > 0:
                break
            time.sleep(0.05)
    return sum(f.received for f in status.files)


def test_restart_with_an_upload_pending_resumes_it(setup, make_expert, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, data_dir = setup
    root = make_expert("survivor", **BIG)
    process = CoordinatorProcess(data_dir, url).start()
    token = process.token("sam")
    kept = _half_upload(process, token, root)
    assert 0 < kept < build_manifest(root).total_size
    assert process.stop() == 0
    process = CoordinatorProcess(data_dir, url).start()
    try:
        with CoordinatorClient(process.address, token) as client:
            result = client.upload(root)
            assert result.resumed_from == kept and not result.already_existed
            assert [e.manifest.ref for e in client.list_experts()] == ["survivor:1"]
            _, path = client.download("survivor", "1", tmp_path / "out")
        assert sha256_file(path / "adapter_model.safetensors") == sha256_file(
            root / "adapter_model.safetensors"
        )
        assert not any((data_dir / "uploads").iterdir())
    finally:
        process.stop()


def test_abandoned_partial_uploads_are_collected(setup, make_expert) -> None:  # type: ignore[no-untyped-def]
    url, data_dir = setup
    root = make_expert("abandoned", **BIG)
    process = CoordinatorProcess(
        data_dir, url, ("--upload-ttl", "1", "--gc-interval", "0.2")
    ).start()
    try:
        token = process.token("ann")
        assert _half_upload(process, token, root) > 0
        with CoordinatorClient(process.address, token) as client:
            for _ in range(100):
                status = client.upload_status(build_manifest(root))
                if status.state == epb.UPLOAD_STATE_ABANDONED:
                    break
                time.sleep(0.1)
            assert status.state == epb.UPLOAD_STATE_ABANDONED, status
            assert not any((data_dir / "uploads").iterdir())
            assert client.list_experts() == []
            result = client.upload(root)  # starting over works
            assert result.resumed_from == 0 and result.expert.status == "active"
    finally:
        process.stop()


def test_shutdown_aborts_uploads_cleanly_and_they_resume(setup, make_expert) -> None:  # type: ignore[no-untyped-def]
    url, data_dir = setup
    root = make_expert("interrupted", **BIG)
    total = build_manifest(root).total_size
    process = CoordinatorProcess(data_dir, url, ("--shutdown-grace", "0.2")).start()
    token = process.token("ida")
    proxy = CuttingProxy(process.port, cut_after=total // 2, stall=30)  # holds the stream open
    errors: list[Exception] = []

    def upload() -> None:
        with CoordinatorClient(proxy.address, token) as client:
            try:
                client.upload(root, retries=0)
            except ClientError as exc:
                errors.append(exc)

    thread = threading.Thread(target=upload)
    thread.start()
    time.sleep(2.0)  # the proxy now stalls with half the bytes delivered
    started = time.monotonic()
    assert process.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 20
    thread.join(60)
    proxy.close()
    assert errors and "finishing in-flight calls" in "".join(process.output)
    process = CoordinatorProcess(data_dir, url).start()
    try:
        with CoordinatorClient(process.address, token) as client:
            result = client.upload(root)
            assert 0 < result.resumed_from < total
            assert [e.manifest.ref for e in client.list_experts()] == ["interrupted:1"]
    finally:
        process.stop()
