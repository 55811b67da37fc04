import json
from pathlib import Path

import pytest

from moerge import wire
from moerge.experts.manifest import ExpertDirError, ExpertManifest, build_manifest, sha256_file


def test_manifest_describes_the_directory(make_expert) -> None:  # type: ignore[no-untyped-def]
    root: Path = make_expert("alpha", "2")
    m = build_manifest(root)
    assert (m.name, m.version, m.base_model_name) == ("alpha", "2", "tiny-bert")
    assert [f.path for f in m.files] == ["adapter_config.json", "adapter_model.safetensors"]
    assert m.file("adapter_model.safetensors").sha256 == sha256_file(
        root / "adapter_model.safetensors"
    )
    assert m.lora.rank == 4 and m.lora.target_modules == ("query", "value")
    assert [x.name for x in m.labels] == ["pos", "neg"]


def test_manifest_round_trips_through_json_and_the_wire(make_expert) -> None:  # type: ignore[no-untyped-def]
    m = build_manifest(make_expert("beta"))
    assert ExpertManifest.from_json(json.loads(json.dumps(m.to_json()))) == m
    back = wire.manifest_from_pb(wire.manifest_to_pb(m))
    assert back == m and back.digest() == m.digest()


def test_overrides_take_precedence(make_expert) -> None:  # type: ignore[no-untyped-def]
    m = build_manifest(make_expert("gamma"), name="delta", version="9")
    assert m.ref == "delta:9"


def test_pickle_only_directory_is_refused_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(ExpertDirError, match="adapter_model.bin: pickle files are refused"):
        build_manifest(tmp_path)
