"""Contributors train and upload, the coordinator learns a router, Route and Predict answer.

Real processes throughout: `moerge-contributor train` on a user's CSV files with
a tiny BERT, uploads over gRPC, and the coordinator's own gating job, on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from contributor.client import ClientError, CoordinatorClient
from moerge.experts.manifest import Label
from tests.conftest import BACKENDS, new_database, running_coordinator
from tests.support import CoordinatorProcess, run_cli

DOMAINS = {
    "zoo": {
        "labels": {"cat": "a cat", "dog": "a dog", "bird": "a bird"},
        "words": {"cat": "cat mouse", "dog": "dog bone", "bird": "bird tree leaf"},
    },
    "office": {
        "labels": {"code": "program code", "disk": "a disk file"},
        "words": {"code": "code bug", "disk": "disk file"},
    },
}


def _write_domain(root: Path, name: str, seed: int) -> tuple[Path, Path]:
    rng = random.Random(seed)
    domain = DOMAINS[name]
    root.mkdir(parents=True, exist_ok=True)
    rows = ["text,label"]
    for label, words in domain["words"].items():
        for i in range(30):
            picked = rng.choices(words.split() + ["the", "a", "and"], k=5)
            rows.append(f"{' '.join(picked)} {i},{label}")
    data = root / "data.csv"
    data.write_text("\n".join(rows) + "\n")
    labels = root / "labels.json"
    labels.write_text(json.dumps(domain["labels"]))
    return data, labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_base) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """Two contributors' experts, trained by the contributor app on their own files."""
    root = tmp_path_factory.mktemp("contributors")
    experts = {}
    for seed, name in enumerate(DOMAINS):
        data, labels = _write_domain(root / name, name, seed)
        out = root / name / "expert"
        result = run_cli(
            "contributor", "train", "--data", str(data), "--labels-file", str(labels),
            "--out", str(out), "--name", f"{name}-expert", "--base-model-dir", str(tiny_base[0]),
            "--base-model", "tiny-bert", "--epochs", "2", "--batch-size", "8", "--rank", "2",
            "--train-per-class", "20", "--validation-per-class", "4", "--test-per-class", "4",
            "--no-progress", timeout=300,
        )  # fmt: skip
        assert "validation accuracy" in result.stdout
        assert (out / "stats" / "embedding_moments.safetensors").is_file()
        experts[name] = out
    return experts


@pytest.fixture(scope="module", params=BACKENDS)
def served(request, templates, tmp_path_factory, tiny_base) -> Iterator[CoordinatorProcess]:  # type: ignore[no-untyped-def]
    directory = tmp_path_factory.mktemp(f"routing-{request.param}")
    with (
        new_database(request.param, templates, directory) as url,
        running_coordinator(
            url, directory / "data", tiny_base[1], "--retrain-delay", "0.1", path=tiny_base[0]
        ) as process,
    ):
        yield process


def _wait_for_router(client: CoordinatorClient, experts: int, timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            info = client.router("tiny-bert")
            if len(info.experts) == experts:
                return info
        except ClientError as exc:
            assert exc.code == grpc.StatusCode.NOT_FOUND
        time.sleep(0.2)
    raise AssertionError("the gating job produced no router over every expert")


def _labels(name: str) -> list[Label]:
    return [Label(k, v) for k, v in DOMAINS[name]["labels"].items()]


@pytest.fixture(scope="module")
def pool(served: CoordinatorProcess, trained: dict[str, Path]) -> dict[str, object]:
    """Before any upload there is no router; after each upload the gating job makes one."""
    tokens = {"ann": served.token("ann"), "ben": served.token("ben")}
    with CoordinatorClient(served.address, tokens["ann"]) as ann:
        with pytest.raises(ClientError) as info:
            ann.route(["the cat"], base_model="tiny-bert")
        ann.upload(trained["zoo"])
        first = _wait_for_router(ann, 1)
    with CoordinatorClient(served.address, tokens["ben"]) as ben:
        ben.upload(trained["office"])
        router = _wait_for_router(ben, 2)
    return {"tokens": tokens, "before": info.value, "first": first, "router": router}


def test_the_pool_routes_and_predicts_after_uploads(
    served: CoordinatorProcess, pool: dict[str, object]
) -> None:
    before, first, router = pool["before"], pool["first"], pool["router"]
    assert isinstance(before, ClientError) and before.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "no router" in str(before)
    assert int(router.version) > int(first.version) and router.method == "gaussian"  # type: ignore[attr-defined]
    metrics = json.loads(router.metrics_json)  # type: ignore[attr-defined]
    assert metrics["experts"] == 2 and "synthetic_routing_accuracy" in metrics
    with CoordinatorClient(served.address, pool["tokens"]["ann"]) as ann:  # type: ignore[index]
        routed = ann.route(
            ["cat mouse the", "code bug a"], labels=_labels("zoo"), top_k=2, base_model="tiny-bert"
        )
        assert routed.router_version == router.version
        for experts, abstained in routed.routes:
            assert abstained or abs(sum(w for _, w in experts) - 1) < 1e-5
        assert routed.routes[0][0][0][0] == "zoo-expert:1"

        for combination in ("top1", "output_ensemble", "parameter_merge"):
            out = ann.predict(
                ["cat mouse cat", "dog bone dog", "bird tree leaf"],
                _labels("zoo"),
                combination=combination,
                base_model="tiny-bert",
            )
            assert [a[0] for a in out.answers] == ["cat", "dog", "bird"] or all(
                a[0] in DOMAINS["zoo"]["labels"] for a in out.answers
            )
            for _, score, experts in out.answers:
                assert 0 < score <= 1
                assert experts == [] or experts[0][0] in {"zoo-expert:1", "office-expert:1"}
            assert out.router_version == router.version


def test_bad_routing_requests_get_clear_errors(
    served: CoordinatorProcess, pool: dict[str, object]
) -> None:
    with CoordinatorClient(served.address, pool["tokens"]["ann"]) as client:  # type: ignore[index]
        cases = [
            (lambda: client.route([], base_model="tiny-bert"), "no texts"),
            (lambda: client.route(["  "], base_model="tiny-bert"), "text 0 is empty"),
            (lambda: client.predict(["x"], _labels("zoo")[:1], base_model="tiny-bert"), "two"),
            (
                lambda: client.predict(
                    ["x"], _labels("zoo"), combination="magic", base_model="tiny-bert"
                ),
                "unknown combination",
            ),
            (
                lambda: client.predict(
                    ["x"], _labels("zoo"), combination="token_mixture", base_model="tiny-bert"
                ),
                "needs a per-token router",
            ),
            (lambda: client.route(["x"], base_model="no-such-model"), "no base model"),
        ]
        for call, message in cases:
            with pytest.raises(ClientError) as info:
                call()
            assert message in str(info.value)
            assert info.value.code in {
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.NOT_FOUND,
            }


def test_route_and_predict_from_the_command_line(
    served: CoordinatorProcess, pool: dict[str, object], tmp_path: Path
) -> None:
    token = pool["tokens"]["ben"]  # type: ignore[index]
    connection = ["--coordinator", served.address, "--token", token]
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(DOMAINS["office"]["labels"]))
    out = run_cli(
        "contributor", "predict", "code bug code", "disk file disk", "--labels-file", str(labels),
        "--base-model", "tiny-bert", "--json", *connection,
    )  # fmt: skip
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    assert [a["text"] for a in answers] == ["code bug code", "disk file disk"]
    assert all(a["label"] in DOMAINS["office"]["labels"] for a in answers)
    assert "router version" in out.stderr
    routed = run_cli(
        "contributor", "route", "cat mouse", "--base-model", "tiny-bert", *connection
    ).stdout
    assert "-expert:1" in routed or "abstained" in routed
    info = run_cli("contributor", "router", "--base-model", "tiny-bert", *connection).stdout
    assert "2 experts" in info and "office-expert:1" in info
    bad = run_cli("contributor", "predict", "x", *connection, check=False)
    assert bad.returncode == 1 and "candidate labels" in bad.stderr
