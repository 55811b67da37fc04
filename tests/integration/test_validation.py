"""Every validation failure, through a real coordinator: the right status, a message that names
the problem, nothing left behind, and the experts already in the pool untouched."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
import torch
from safetensors.torch import load_file, save_file

from contributor.client import ClientError, CoordinatorClient
from moerge.experts.manifest import (
    ExpertManifest,
    FileEntry,
    StatsEntry,
    build_manifest,
    sha256_file,
)
from tests.support import CoordinatorProcess

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
QUERY_A = "base_model.model.encoder.layer.0.attention.self.query.lora_A.weight"
MOMENTS = "stats/embedding_moments.safetensors"


def _entry(root: Path, path: str) -> FileEntry:
    return FileEntry(path, (root / path).stat().st_size, sha256_file(root / path))


def _refresh(m: ExpertManifest, root: Path) -> ExpertManifest:
    """The manifest with sizes and hashes of the files as they now are on disk."""
    return replace(m, files=tuple(_entry(root, f.path) for f in m.files))


def _edit_config(root: Path, **changes: object) -> None:
    config = json.loads((root / CONFIG).read_text())
    config.update(changes)
    (root / CONFIG).write_text(json.dumps(config))


def _edit_weights(root: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> None:
    tensors = load_file(str(root / WEIGHTS))
    edit(tensors)
    save_file(tensors, str(root / WEIGHTS), metadata={"format": "pt"})


def _with_stats(
    m: ExpertManifest, root: Path, kind: str, tensors: dict[str, torch.Tensor]
) -> ExpertManifest:
    path = f"stats/{kind}.safetensors"
    (root / "stats").mkdir(exist_ok=True)
    save_file(tensors, str(root / path))
    return replace(m, files=(*m.files, _entry(root, path)), stats=(StatsEntry(kind, path, {}),))


def pickle_listed(m: ExpertManifest, root: Path) -> ExpertManifest:
    torch.save({"weight": torch.zeros(2)}, root / "adapter_model.bin")
    return replace(m, files=(m.files[0], _entry(root, "adapter_model.bin")))


def pickle_content(m: ExpertManifest, root: Path) -> ExpertManifest:
    torch.save({"weight": torch.zeros(2)}, root / WEIGHTS)
    return _refresh(m, root)


def not_lora(m: ExpertManifest, root: Path) -> ExpertManifest:
    _edit_config(root, peft_type="IA3")
    return _refresh(m, root)


def bad_json(m: ExpertManifest, root: Path) -> ExpertManifest:
    (root / CONFIG).write_text("{not json")
    return _refresh(m, root)


def unknown_target(m: ExpertManifest, root: Path) -> ExpertManifest:
    _edit_config(root, target_modules=["nonexistent_proj"])
    return _refresh(m, root)


def regex_target(m: ExpertManifest, root: Path) -> ExpertManifest:
    _edit_config(root, target_modules="(.|.)*nonexistent")
    return _refresh(m, root)


def rank_mismatch(m: ExpertManifest, root: Path) -> ExpertManifest:
    _edit_config(root, r=8)
    return replace(_refresh(m, root), lora=replace(m.lora, rank=8))


def wrong_shape(m: ExpertManifest, root: Path) -> ExpertManifest:
    _edit_weights(root, lambda t: t.__setitem__(QUERY_A, torch.zeros(4, 16)))
    return _refresh(m, root)


def foreign_module(m: ExpertManifest, root: Path) -> ExpertManifest:
    key = QUERY_A.replace("self.query", "self.nonexistent")
    _edit_weights(root, lambda t: t.__setitem__(key, torch.zeros(4, 32)))
    return _refresh(m, root)


def full_weight(m: ExpertManifest, root: Path) -> ExpertManifest:
    key = QUERY_A.replace("lora_A.weight", "weight")
    _edit_weights(root, lambda t: t.__setitem__(key, torch.zeros(32, 32)))
    return _refresh(m, root)


def not_finite(m: ExpertManifest, root: Path) -> ExpertManifest:
    def poison(t: dict[str, torch.Tensor]) -> None:
        t[QUERY_A][0, 0] = float("nan")

    _edit_weights(root, poison)
    return _refresh(m, root)


def too_large(m: ExpertManifest, root: Path) -> ExpertManifest:
    return replace(m, files=(m.files[0], replace(m.files[1], size=2 * 1024**3)))


def wrong_fingerprint(m: ExpertManifest, root: Path) -> ExpertManifest:
    return replace(m, base_model_fingerprint="0" * 64)


def unknown_base(m: ExpertManifest, root: Path) -> ExpertManifest:
    return replace(m, base_model_name="no-such-model")


def stats_shape(m: ExpertManifest, root: Path) -> ExpertManifest:
    return _with_stats(
        m,
        root,
        "embedding_moments",
        {"count": torch.tensor(3.0), "sum": torch.zeros(7), "outer": torch.zeros(32, 32)},
    )


def stats_kind(m: ExpertManifest, root: Path) -> ExpertManifest:
    return _with_stats(m, root, "telepathy", {"x": torch.zeros(3)})


def hash_mismatch(m: ExpertManifest, root: Path) -> ExpertManifest:
    return replace(m, files=(m.files[0], replace(m.files[1], sha256="f" * 64)))


def bad_name(m: ExpertManifest, root: Path) -> ExpertManifest:
    return replace(m, name="../../etc")


CASES = [
    (
        pickle_listed,
        grpc.StatusCode.INVALID_ARGUMENT,
        "adapter_model.bin: pickle-based files are refused",
    ),
    (pickle_content, grpc.StatusCode.INVALID_ARGUMENT, "pickle or torch.save archive"),
    (not_lora, grpc.StatusCode.INVALID_ARGUMENT, "only LORA adapters"),
    (bad_json, grpc.StatusCode.INVALID_ARGUMENT, "adapter_config.json: invalid JSON"),
    (unknown_target, grpc.StatusCode.FAILED_PRECONDITION, "match no linear module"),
    (
        regex_target,
        grpc.StatusCode.INVALID_ARGUMENT,
        "regular expressions are not accepted",
    ),
    (
        rank_mismatch,
        grpc.StatusCode.FAILED_PRECONDITION,
        "lora_A has shape [4, 32], expected [8, 32]",
    ),
    (wrong_shape, grpc.StatusCode.FAILED_PRECONDITION, "query.lora_A has shape [4, 16]"),
    (
        foreign_module,
        grpc.StatusCode.FAILED_PRECONDITION,
        "'encoder.layer.0.attention.self.nonexistent' does not exist",
    ),
    (full_weight, grpc.StatusCode.INVALID_ARGUMENT, "is not a lora_A or lora_B weight"),
    (not_finite, grpc.StatusCode.INVALID_ARGUMENT, "NaN or infinite"),
    (too_large, grpc.StatusCode.RESOURCE_EXHAUSTED, "the limit is"),
    (wrong_fingerprint, grpc.StatusCode.FAILED_PRECONDITION, "fingerprint"),
    (unknown_base, grpc.StatusCode.NOT_FOUND, "no base model named 'no-such-model'"),
    (stats_shape, grpc.StatusCode.INVALID_ARGUMENT, "'sum' has shape [7], expected [32]"),
    (stats_kind, grpc.StatusCode.INVALID_ARGUMENT, "unknown statistics kind 'telepathy'"),
    (hash_mismatch, grpc.StatusCode.DATA_LOSS, "hash to"),
    (bad_name, grpc.StatusCode.INVALID_ARGUMENT, "expert name '../../etc' is invalid"),
]


@pytest.fixture(scope="module")
def keeper(
    coordinator: CoordinatorProcess, tmp_path_factory: pytest.TempPathFactory, tiny_base
) -> tuple[CoordinatorClient, Path]:  # type: ignore[no-untyped-def]
    """A client and an expert already in the pool, which no refused upload may touch."""
    from moerge.experts.adapters import create_lora

    root = create_lora(
        tiny_base[0],
        tmp_path_factory.mktemp("keeper") / "keeper",
        name="keeper",
        base_name="tiny-bert",
        rank=4,
    )
    client = CoordinatorClient(coordinator.address, coordinator.token("validator"))
    client.upload(root)
    yield client, root
    client.close()


def _spool(coordinator: CoordinatorProcess) -> set[str]:
    spool = coordinator.data_dir / "uploads"
    return {p.name for p in spool.iterdir()} if spool.exists() else set()


@pytest.mark.parametrize(("mutate", "status", "message"), CASES, ids=[c[0].__name__ for c in CASES])
def test_refused_uploads_leave_nothing_behind(
    coordinator: CoordinatorProcess,
    keeper,
    make_expert,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    mutate: Callable[[ExpertManifest, Path], ExpertManifest],
    status: grpc.StatusCode,
    message: str,
) -> None:
    client, keeper_root = keeper
    before = {e.manifest.ref for e in client.list_experts(include_retired=True)}
    spool_before = _spool(coordinator)
    root = make_expert(f"refused-{mutate.__name__.replace('_', '-')}")
    manifest = mutate(build_manifest(root), root)
    with pytest.raises(ClientError) as info:
        client.upload_files(manifest, root, retries=0)
    assert info.value.code == status, str(info.value)
    assert message in str(info.value)
    assert {e.manifest.ref for e in client.list_experts(include_retired=True)} == before
    left = _spool(coordinator) - spool_before
    if (
        status == grpc.StatusCode.DATA_LOSS
    ):  # resumable: the intact files stay, the corrupt one goes
        assert all(not (coordinator.data_dir / "uploads" / d / "001.part").exists() for d in left)
    else:
        assert left == set()
    _, path = client.download("keeper", "1", tmp_path / "keeper")
    assert sha256_file(path / WEIGHTS) == sha256_file(keeper_root / WEIGHTS)


def test_expert_with_valid_statistics_round_trips(keeper, make_expert, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client, _ = keeper
    root = make_expert("with-moments")
    embeddings = torch.randn(10, 32)
    manifest = _with_stats(
        build_manifest(root),
        root,
        "embedding_moments",
        {"count": torch.tensor(10.0), "sum": embeddings.sum(0), "outer": embeddings.T @ embeddings},
    )
    result = client.upload_files(manifest, root)
    assert [s.kind for s in result.expert.manifest.stats] == ["embedding_moments"]
    _, path = client.download("with-moments", "1", tmp_path)
    assert sha256_file(path / MOMENTS) == sha256_file(root / MOMENTS)


def test_the_coordinator_stores_arrow_prototypes_computed_from_the_adapter(
    coordinator: CoordinatorProcess, keeper, make_expert, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A contributor's own `arrow` statistics are replaced by the coordinator's."""
    from safetensors.numpy import load_file as load_numpy
    from sqlalchemy import select

    from coordinator.blobs import BlobStore
    from coordinator.registry.db import make_engine, session_factory
    from coordinator.registry.models import Expert
    from moerge.stats.arrow import arrow_prototypes

    client, _ = keeper
    root = make_expert("with-arrow", seed=3)
    forged = {"encoder.layer.0.attention.self.query": torch.ones(32)}
    manifest = _with_stats(build_manifest(root), root, "arrow", forged)
    client.upload_files(manifest, root)
    engine = make_engine(coordinator.database_url)
    try:
        with session_factory(engine)() as session:
            row = session.scalars(select(Expert).where(Expert.name == "with-arrow")).one()
            stats = {s.kind: s for s in row.stats}
            assert set(stats) == {"arrow"}
            blob, meta = stats["arrow"].blob, stats["arrow"].meta
    finally:
        engine.dispose()
    stored = load_numpy(str(BlobStore(coordinator.data_dir / "blobs").path(blob)))
    expected, sigmas = arrow_prototypes(root)
    assert set(stored) == set(expected) and len(stored) == 4
    for module, vector in expected.items():
        assert abs(float(stored[module] @ vector)) == pytest.approx(1.0, abs=1e-5)
    assert meta["computed_by"] == "coordinator"
    assert meta["singular_values"] == pytest.approx(sigmas)
