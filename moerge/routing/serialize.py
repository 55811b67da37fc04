"""Routers to and from bytes: a safetensors file of the router's state, no pickle.

The safetensors metadata header carries what is not an array: the format and its version,
the method name, the config (JSON), the expert refs (JSON, in routing order) and the
abstain threshold. `loads` rebuilds the router through the method registry.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from typing import Any

import numpy as np

from moerge.routing import registry
from moerge.routing.base import Router

FORMAT = "moerge.router"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 100 * 1024 * 1024


class RouterFormatError(ValueError):
    """Bytes that are not a router written by `dumps`."""


def dumps(router: Router) -> bytes:
    """The router's state and description as safetensors bytes."""
    from safetensors.numpy import save

    tensors = {k: np.ascontiguousarray(v) for k, v in router.state().items()}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "method": router.name,
        "config": json.dumps(dataclasses.asdict(router.config), sort_keys=True),
        "experts": json.dumps(list(router.experts)),
        "abstain": json.dumps({"threshold": router.config.abstain, "rule": "mahalanobis_ratio"}),
    }
    return bytes(save(tensors, metadata=metadata))


def loads(data: bytes) -> Router:
    """A router from `dumps` output; RouterFormatError on bad data or an unknown method."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    meta = read_metadata(data)
    try:
        cls = registry.get(meta.get("method", ""))
    except registry.UnknownRouterError as exc:
        raise RouterFormatError(str(exc)) from None
    config = _config(cls, meta)
    experts = _json(meta, "experts")
    if not isinstance(experts, list) or not all(isinstance(r, str) for r in experts):
        raise RouterFormatError("router metadata 'experts' must be a JSON list of refs")
    try:
        tensors = load(bytes(data))
    except SafetensorError as exc:
        raise RouterFormatError(f"unreadable router tensors ({exc})") from exc
    router = cls(config)
    try:
        router.load_state(tensors, experts=experts)
    except (ValueError, KeyError) as exc:
        raise RouterFormatError(f"bad {cls.name} router state: {exc}") from exc
    return router


def read_metadata(data: bytes) -> dict[str, str]:
    """The safetensors metadata of router bytes, checked for format and version."""
    if len(data) < 8 or data[:1] == b"\x80" or data[:2] == b"PK":
        raise RouterFormatError("not a router: expected safetensors bytes (pickles are refused)")
    (length,) = struct.unpack("<Q", data[:8])
    if length > min(MAX_HEADER_BYTES, len(data) - 8):
        raise RouterFormatError(f"not a router: bad safetensors header length {length}")
    try:
        header = json.loads(data[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RouterFormatError(f"not a router: header is not JSON ({exc})") from exc
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise RouterFormatError(f"not a router: the metadata does not name format {FORMAT!r}")
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise RouterFormatError(
            f"unsupported router format version {meta.get('format_version')!r} "
            f"(this code reads {FORMAT_VERSION})"
        )
    return meta


def _json(meta: dict[str, str], key: str) -> Any:
    try:
        return json.loads(meta[key])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise RouterFormatError(f"router metadata {key!r} is missing or not JSON") from exc


def _config(cls: type[Router], meta: dict[str, str]) -> Any:
    values = _json(meta, "config")
    if not isinstance(values, dict):
        raise RouterFormatError("router metadata 'config' must be a JSON object")
    known = {f.name for f in dataclasses.fields(cls.config_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise RouterFormatError(f"{cls.name}: unknown config fields {unknown}")
    try:
        return cls.config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise RouterFormatError(f"{cls.name}: bad config ({exc})") from exc
