"""Validation of an expert, from its manifest to every tensor of its weights.

Each failure raises ValidationError with a Problem that says what kind of
failure it is (the coordinator maps each to a gRPC status) and a message that
names the file, module or tensor at fault. Pickle-based files are refused by
name and by content, and are never unpickled.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from moerge.experts.manifest import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    PICKLE_SUFFIXES,
    STATS_DIR,
    ExpertManifest,
)
from moerge.models import BaseModelSpec
from moerge.stats.kinds import KINDS, StatsShapeError, validate_stats

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
PEFT_PREFIX = "base_model.model."
LORA_SUFFIXES = {".lora_A.weight": "A", ".lora_B.weight": "B"}
MAX_HEADER_BYTES = 100 * 1024 * 1024


class Problem(Enum):
    INVALID = "invalid"  # malformed or inconsistent content
    UNKNOWN_BASE = "unknown_base"  # no base model of that name
    BASE_MISMATCH = "base_mismatch"  # the fingerprint or modules do not match the base
    TOO_LARGE = "too_large"  # over a configured limit
    CORRUPT = "corrupt"  # bytes that do not hash to what the manifest declares


class ValidationError(Exception):
    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 512 * 1024 * 1024
    max_expert_bytes: int = 1024 * 1024 * 1024
    max_files: int = 64
    max_labels: int = 4096
    max_text_chars: int = 8192


def invalid(message: str) -> ValidationError:
    return ValidationError(Problem.INVALID, message)


def check_manifest(manifest: ExpertManifest, limits: Limits) -> None:
    """Everything that can be checked before any byte arrives."""
    _check_identity(manifest, limits)
    _check_files(manifest, limits)
    _check_stats_entries(manifest)


def _check_identity(m: ExpertManifest, limits: Limits) -> None:
    if not NAME_RE.match(m.name):
        raise invalid(f"expert name {m.name!r} is invalid: use letters, digits, '.', '_' or '-'")
    if not VERSION_RE.match(m.version):
        raise invalid(
            f"expert version {m.version!r} is invalid: use letters, digits, '.', '_', '+' or '-'"
        )
    if not m.base_model_name:
        raise invalid("the manifest names no base model")
    if not SHA256_RE.match(m.base_model_fingerprint):
        raise invalid(
            f"base model fingerprint {m.base_model_fingerprint!r} is not a sha256 hex digest"
        )
    if len(m.task_description) > limits.max_text_chars:
        raise invalid(f"task description is longer than {limits.max_text_chars} characters")
    if len(m.labels) > limits.max_labels:
        raise ValidationError(
            Problem.TOO_LARGE, f"{len(m.labels)} labels; the limit is {limits.max_labels}"
        )
    names = [label.name for label in m.labels]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise invalid("label names must be non-empty and unique")
    if m.lora.rank <= 0 or not m.lora.target_modules:
        raise invalid("the LoRA summary needs a positive rank and at least one target module")


def _check_files(m: ExpertManifest, limits: Limits) -> None:
    paths = [f.path for f in m.files]
    for path in paths:
        if path.lower().endswith(PICKLE_SUFFIXES):
            raise invalid(f"{path}: pickle-based files are refused; save with safetensors")
    allowed = {ADAPTER_CONFIG, ADAPTER_WEIGHTS} | {s.path for s in m.stats}
    for path in paths:
        if path not in allowed:
            raise invalid(
                f"{path}: not part of an expert (expected {ADAPTER_CONFIG}, "
                f"{ADAPTER_WEIGHTS} and {STATS_DIR}/<kind>.safetensors)"
            )
    if len(set(paths)) != len(paths):
        raise invalid("a file is listed twice in the manifest")
    for required in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if required not in paths:
            raise invalid(f"the manifest lists no {required}")
    if len(paths) > limits.max_files:
        raise ValidationError(
            Problem.TOO_LARGE, f"{len(paths)} files; the limit is {limits.max_files}"
        )
    for f in m.files:
        if not SHA256_RE.match(f.sha256):
            raise invalid(f"{f.path}: sha256 {f.sha256!r} is not a lowercase hex digest")
        if f.size > limits.max_file_bytes:
            raise ValidationError(
                Problem.TOO_LARGE, f"{f.path}: {f.size} bytes; the limit is {limits.max_file_bytes}"
            )
    if m.total_size > limits.max_expert_bytes:
        raise ValidationError(
            Problem.TOO_LARGE,
            f"expert is {m.total_size} bytes; the limit is {limits.max_expert_bytes}",
        )


def _check_stats_entries(m: ExpertManifest) -> None:
    kinds = [s.kind for s in m.stats]
    if len(set(kinds)) != len(kinds):
        raise invalid("a statistics kind is listed twice")
    for s in m.stats:
        if s.kind not in KINDS:
            raise invalid(f"unknown statistics kind {s.kind!r} (known: {', '.join(sorted(KINDS))})")
        if s.path != f"{STATS_DIR}/{s.kind}.safetensors":
            raise invalid(
                f"statistics {s.kind!r} must be stored as {STATS_DIR}/{s.kind}.safetensors"
            )


def check_base(m: ExpertManifest, base: BaseModelSpec | None) -> None:
    if base is None:
        raise ValidationError(
            Problem.UNKNOWN_BASE, f"no base model named {m.base_model_name!r} is registered"
        )
    if base.fingerprint != m.base_model_fingerprint:
        raise ValidationError(
            Problem.BASE_MISMATCH,
            f"base model fingerprint {m.base_model_fingerprint[:12]}… does not match the registered "
            f"{base.name!r} ({base.fingerprint[:12]}…): the adapter was trained on another model",
        )


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file; refuses pickles and zip archives by content."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        if head[:1] == b"\x80" or head[:2] == b"PK":
            raise invalid(
                f"{path.name}: is a pickle or torch.save archive, refused (never unpickled); "
                "save with safetensors"
            )
        if len(head) < 8:
            raise invalid(f"{path.name}: too short to be a safetensors file")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER_BYTES or length > path.stat().st_size - 8:
            raise invalid(f"{path.name}: not a safetensors file (header length {length})")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise invalid(f"{path.name}: not a safetensors file ({type(exc).__name__})") from exc
    if not isinstance(header, dict):
        raise invalid(f"{path.name}: not a safetensors file")
    header.pop("__metadata__", None)
    return header


def load_tensors(path: Path) -> dict[str, Any]:
    """All tensors of a safetensors file, after its header has been checked."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    read_safetensors_header(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise invalid(f"{path.name}: unreadable safetensors file ({exc})") from exc


def check_finite(name: str, tensors: dict[str, Any]) -> None:
    import torch

    for key, tensor in tensors.items():
        if not tensor.is_floating_point():
            raise invalid(f"{name}: tensor {key} has dtype {tensor.dtype}; expected floating point")
        # a NaN or an infinity makes the sum non-finite; only then look value by value
        # (an overflowing sum of finite values is a false alarm that the exact check clears)
        if not bool(torch.isfinite(tensor.sum())) and not bool(torch.isfinite(tensor).all()):
            raise invalid(f"{name}: tensor {key} holds NaN or infinite values")


def check_stats_file(kind: str, path: Path, meta: dict[str, Any], base: BaseModelSpec) -> None:
    tensors = load_tensors(path)
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    try:
        validate_stats(kind, shapes, meta, base.hidden_size)
    except StatsShapeError as exc:
        raise invalid(f"{STATS_DIR}/{kind}.safetensors: {exc}") from exc
    check_finite(f"{STATS_DIR}/{kind}.safetensors", tensors)
