import json
from pathlib import Path

import pytest

from moerge.models import BaseModelError, BaseModelSpec, describe, fingerprint
from tests.support import tiny_bert


def test_fingerprint_is_stable_and_ignores_how_the_config_was_written(tmp_path: Path) -> None:
    a = tiny_bert(tmp_path / "a", seed=1)
    first = fingerprint(a)
    config = json.loads((a / "config.json").read_text())
    config["transformers_version"] = "0.0.0"
    (a / "config.json").write_text(json.dumps(config))
    assert fingerprint(a) == first
    assert len(first) == 64


def test_fingerprint_changes_with_weights_and_config(tmp_path: Path) -> None:
    a = fingerprint(tiny_bert(tmp_path / "a", seed=1))
    assert fingerprint(tiny_bert(tmp_path / "b", seed=2)) != a
    c = tiny_bert(tmp_path / "c", seed=1)
    config = json.loads((c / "config.json").read_text())
    config["layer_norm_eps"] = 1e-5
    (c / "config.json").write_text(json.dumps(config))
    assert fingerprint(c) != a


def test_describe_lists_linear_modules_with_shapes(tiny_base: tuple[Path, BaseModelSpec]) -> None:
    path, spec = tiny_base
    assert spec.hidden_size == 32
    assert spec.linear_modules["encoder.layer.0.attention.self.query"] == (32, 32)
    assert spec.linear_modules["encoder.layer.1.intermediate.dense"] == (32, 64)
    again = BaseModelSpec.from_json(spec.name, spec.fingerprint, spec.to_json())
    assert again == spec


def test_default_base_model_is_packaged() -> None:
    from moerge.models import default_base_model_path, read_config

    config = read_config(default_base_model_path())
    assert config["hidden_size"] == 384 and config["model_type"] == "bert"


def test_directory_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BaseModelError, match="no config.json"):
        describe(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "bert", "hidden_size": 8}')
    with pytest.raises(BaseModelError, match="no model.safetensors"):
        fingerprint(tmp_path)
