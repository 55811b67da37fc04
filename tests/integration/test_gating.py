"""The gating job: versions, atomic swaps under load, the scheduler and train-router."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contributor.client import CoordinatorClient
from coordinator.server import Coordinator
from coordinator.services import contributors, routers
from coordinator.services.errors import ServiceError
from coordinator.settings import Settings
from moerge.experts.adapters import create_lora
from moerge.experts.encoder import Encoder
from moerge.experts.manifest import Label
from moerge.stats.compute import write_expert_stats
from moerge.stats.examples import write_examples
from tests.conftest import BACKENDS, new_database, register_base
from tests.support import run_cli

TOPICS = {
    "zoo": ["the cat and the dog", "a bird in a tree", "the fish and the cat", "dog bone"],
    "office": ["code with a bug", "a disk file", "the server code", "file on disk"],
    "sky": ["the sun and rain", "rain on the leaf", "sun sun rain", "a rain of sun"],
}


def _expert(root: Path, base: Path, name: str, seed: int) -> Path:
    out = create_lora(
        base,
        root / name,
        name=name,
        base_name="tiny-bert",
        rank=2,
        seed=seed,
        labels=[Label(f"{name}-a", f"{name} one"), Label(f"{name}-b", f"{name} two")],
    )
    write_expert_stats(out, base, TOPICS[name] * 5)
    write_examples(out, Encoder.from_dir(base), TOPICS[name], 4)  # opt-in, for retrieval
    return out


@pytest.fixture(params=BACKENDS)
def served(request, templates, tmp_path: Path, tiny_base) -> Iterator[tuple[Coordinator, str]]:  # type: ignore[no-untyped-def]
    with new_database(request.param, templates, tmp_path) as url:
        register_base(url, tiny_base[1], tiny_base[0])
        marker = request.node.get_closest_marker("settings")
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=url,
            grpc_port=0,
            default_base_model=False,
            **{
                "retrain_on_change": False,
                "retrain_delay_seconds": 0.05,
                **(marker.kwargs if marker else {}),
            },
        )
        coordinator = Coordinator(settings)
        coordinator.start()
        with coordinator.sessions.begin() as session:
            _, token = contributors.create(session, name="ops", role="admin", actor="test")
        try:
            yield coordinator, token
        finally:
            coordinator.stop(grace=1)


def _upload_all(coordinator: Coordinator, token: str, root: Path, base: Path) -> None:
    with CoordinatorClient(f"127.0.0.1:{coordinator.port}", token) as client:
        for seed, name in enumerate(TOPICS):
            client.upload(_expert(root, base, name, seed))


def test_swaps_are_atomic_while_route_calls_keep_coming(
    served: tuple[Coordinator, str], tmp_path: Path, tiny_base
) -> None:  # type: ignore[no-untyped-def]
    coordinator, token = served
    _upload_all(coordinator, token, tmp_path / "experts", tiny_base[0])
    coordinator.gating.run("tiny-bert", reason="test")
    seen: list[list[tuple[int, int]]] = [[] for _ in range(4)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def caller(i: int) -> None:
        with CoordinatorClient(f"127.0.0.1:{coordinator.port}", token) as client:
            while not stop.is_set():
                try:
                    out = client.route(TOPICS["zoo"], top_k=2, base_model="tiny-bert")
                    for experts, abstained in out.routes:
                        assert abstained or abs(sum(w for _, w in experts) - 1) < 1e-5
                    seen[i].append((int(out.router_version), len(out.routes)))
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)
                    return

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    versions = []
    for method in ("centroid", "learned_gate", "gaussian", "centroid", "gaussian"):
        versions.append(coordinator.gating.run("tiny-bert", method=method, reason="test").version)
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    for calls in seen:
        assert calls, "every caller got answers"
        answered = [v for v, _ in calls]
        assert answered == sorted(answered), "a caller never sees an older router after a newer"
        assert set(answered) <= {1, *versions}
    with coordinator.sessions() as session:
        listed = routers.list_versions(session, base_model_name="tiny-bert")
    assert [v.active for v in listed].count(True) == 1 and listed[-1].active
    assert listed[-1].method == "gaussian" and len(listed[-1].experts) == 3


def test_retrieval_routes_with_the_uploaded_examples_and_arrow_is_stored(
    served: tuple[Coordinator, str], tmp_path: Path, tiny_base
) -> None:  # type: ignore[no-untyped-def]
    coordinator, token = served
    _upload_all(coordinator, token, tmp_path / "experts", tiny_base[0])
    view = coordinator.gating.run("tiny-bert", method="retrieval", reason="test")
    assert view.metrics["examples"] == 12 and view.metrics["experts_without_examples"] == 0
    with CoordinatorClient(f"127.0.0.1:{coordinator.port}", token) as client:
        routed = client.route(TOPICS["zoo"], base_model="tiny-bert")
        assert routed.method == "retrieval" and routed.router_version == str(view.version)
    with coordinator.sessions() as session:
        kinds = {
            tuple(sorted(s.kind for s in row.stats))
            for row in routers.pool(session, base_model_name="tiny-bert")
        }
    assert kinds == {("arrow", "embedding_moments", "examples")}


def test_train_router_from_another_process_is_picked_up(
    served: tuple[Coordinator, str], tmp_path: Path, tiny_base
) -> None:  # type: ignore[no-untyped-def]
    coordinator, token = served
    _upload_all(coordinator, token, tmp_path / "experts", tiny_base[0])
    settings = coordinator.settings
    args = ["--data-dir", str(settings.data_dir), "--database-url", settings.url]
    out = run_cli(
        "coordinator", "train-router", "--base-model", "tiny-bert", "--method", "centroid", *args
    )
    assert "version 1 (centroid) is active" in out.stdout
    assert "synthetic_routing_accuracy" in out.stdout
    with CoordinatorClient(f"127.0.0.1:{coordinator.port}", token) as client:
        assert client.route(["a cat"], base_model="tiny-bert").method == "centroid"
        run_cli("coordinator", "train-router", "--base-model", "tiny-bert", *args)
        routed = client.route(["a cat"], base_model="tiny-bert")
        assert (routed.router_version, routed.method) == ("2", "gaussian")
    listing = run_cli("coordinator", "routers", "--base-model", "tiny-bert", *args).stdout
    assert "* v2" in listing and "  v1" in listing
    bad = run_cli("coordinator", "train-router", "--method", "nope", *args, check=False)
    assert bad.returncode == 1 and "unknown routing method 'nope'" in bad.stderr
    token_level = run_cli("coordinator", "train-router", "--method", "arrow", *args, check=False)
    assert token_level.returncode == 1 and "'arrow' routes per token" in token_level.stderr


def test_an_empty_pool_fails_clearly_and_the_job_says_so(
    served: tuple[Coordinator, str],
) -> None:
    coordinator, _ = served
    with pytest.raises(ServiceError, match="no active expert of 'tiny-bert' has embedding_moments"):
        coordinator.gating.run("tiny-bert", reason="test")
    from sqlalchemy import select

    from coordinator.registry.models import Job

    with coordinator.sessions() as session:
        job = session.scalars(select(Job)).one()
    assert job.state == "failed" and "embedding_moments" in (job.error or "")


@pytest.mark.settings(retrain_on_change=True)
def test_the_scheduler_retrains_when_the_pool_changes(
    served: tuple[Coordinator, str], tmp_path: Path, tiny_base
) -> None:  # type: ignore[no-untyped-def]
    coordinator, token = served
    _upload_all(coordinator, token, tmp_path / "experts", tiny_base[0])

    def active() -> routers.RouterView | None:
        with coordinator.sessions() as session:
            return routers.active(session, base_model_name="tiny-bert")

    deadline = time.monotonic() + 60
    while (view := active()) is None or len(view.experts) < 3:
        assert time.monotonic() < deadline, "no router over the three experts"
        time.sleep(0.1)
    with CoordinatorClient(f"127.0.0.1:{coordinator.port}", token) as client:
        client.retire("sky", "1")
    while (view := active()) is None or len(view.experts) != 2:
        assert time.monotonic() < deadline, "no router after the retirement"
        time.sleep(0.1)
    assert "sky:1" not in view.experts


@pytest.mark.settings(retrain_every_seconds=0.3)
def test_the_period_catches_changes_nobody_announced(
    served: tuple[Coordinator, str], tmp_path: Path, tiny_base
) -> None:  # type: ignore[no-untyped-def]
    """With retraining on changes off, the periodic check still finds the stale router."""
    coordinator, token = served
    _upload_all(coordinator, token, tmp_path / "experts", tiny_base[0])
    deadline = time.monotonic() + 60
    while True:
        with coordinator.sessions() as session:
            view = routers.active(session, base_model_name="tiny-bert")
        if view is not None and len(view.experts) == 3:
            break
        assert time.monotonic() < deadline, "the periodic check trained no router"
        time.sleep(0.1)
    with coordinator.sessions() as session:
        before = len(routers.list_versions(session, base_model_name="tiny-bert"))
    time.sleep(1.0)  # more periods pass; an unchanged pool trains nothing new
    with coordinator.sessions() as session:
        assert len(routers.list_versions(session, base_model_name="tiny-bert")) == before
