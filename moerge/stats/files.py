"""Routing statistics inside an expert directory: stats/<kind>.safetensors + stats/<kind>.json.

The JSON holds the small metadata (form, noise) that travels in the manifest and
that the coordinator needs to check shapes; the safetensors file holds the arrays.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from moerge.experts.manifest import STATS_DIR
from moerge.stats.moments import KIND, Moments, load_moments, save_moments


def stats_paths(expert_dir: Path, kind: str) -> tuple[Path, Path]:
    base = Path(expert_dir) / STATS_DIR
    return base / f"{kind}.safetensors", base / f"{kind}.json"


def write_moments(expert_dir: Path, moments: Moments) -> Path:
    """Store embedding_moments in an expert directory; returns the tensor file."""
    tensors_path, meta_path = stats_paths(expert_dir, KIND)
    tensors_path.parent.mkdir(parents=True, exist_ok=True)
    save_moments(moments, tensors_path)
    _, meta = moments.to_tensors()
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return tensors_path


def read_moments(expert_dir: Path) -> Moments:
    tensors_path, _ = stats_paths(expert_dir, KIND)
    if not tensors_path.is_file():
        raise FileNotFoundError(
            f"{expert_dir}: no {KIND} statistics; run `moerge-contributor stats` first"
        )
    return load_moments(tensors_path)


def moments_from_bytes(data: bytes, meta: Mapping[str, Any]) -> Moments:
    """Moments from the bytes of a stats file and the metadata the manifest carried."""
    from safetensors.numpy import load

    tensors: dict[str, np.ndarray] = load(data)
    return Moments.from_tensors(tensors, meta)


def write_stats(
    expert_dir: Path, kind: str, tensors: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> Path:
    """Store statistics of any kind in an expert directory; returns the tensor file."""
    from safetensors.numpy import save_file

    tensors_path, meta_path = stats_paths(expert_dir, kind)
    tensors_path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        name: np.ascontiguousarray(value, dtype=np.float32) for name, value in tensors.items()
    }
    save_file(arrays, str(tensors_path))
    meta_path.write_text(json.dumps(dict(meta), indent=2, sort_keys=True) + "\n")
    return tensors_path


def read_stats(expert_dir: Path, kind: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(tensors, metadata) of one kind of statistics in an expert directory."""
    from safetensors.numpy import load_file

    tensors_path, meta_path = stats_paths(expert_dir, kind)
    if not tensors_path.is_file():
        raise FileNotFoundError(f"{expert_dir}: no {kind} statistics")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return dict(load_file(str(tensors_path))), meta


def has_stats(expert_dir: Path, kind: str) -> bool:
    return stats_paths(expert_dir, kind)[0].is_file()


def stats_meta(expert_dir: Path, kind: str) -> dict[str, Any] | None:
    """The metadata of one kind of statistics, without reading its tensors; None if absent."""
    tensors_path, meta_path = stats_paths(expert_dir, kind)
    if not tensors_path.is_file():
        return None
    return json.loads(meta_path.read_text()) if meta_path.is_file() else {}
