"""What per-token routing methods share: one vector per expert and adapted module.

A token router is fit from one vector per (expert, module), read from the experts'
statistics (Arrow prototypes, PHATGOOSE gates). Inside the model, each adapted module
asks it for weights over experts for every token of its input (`gate`): scores [B, T, E],
top-k, softmax over the chosen. The `token_mixture` combination runs the model so.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from moerge.experts.mixture import top_k_softmax
from moerge.routing.base import check_config


@dataclass(frozen=True)
class TokenRouterConfig:
    top_k: int = field(default=2, metadata={"help": "experts mixed per token and module"})
    temperature: float = field(
        default=1.0, metadata={"help": "softmax temperature over the chosen experts' scores"}
    )

    def __post_init__(self) -> None:
        check_config(self.top_k >= 1, "top_k", self.top_k, ">= 1")
        check_config(self.temperature > 0, "temperature", self.temperature, "> 0")


class TokenRouter(ABC):
    """Per-token, per-module weights over experts, from one vector per expert and module."""

    name: ClassVar[str]
    config_cls: ClassVar[type[TokenRouterConfig]] = TokenRouterConfig
    taxonomy: ClassVar[dict[str, str]]
    stats_kind: ClassVar[str]  # the statistics kind the vectors come from

    def __init__(self, config: TokenRouterConfig | None = None) -> None:
        config = self.config_cls() if config is None else config
        if not isinstance(config, self.config_cls):
            raise TypeError(f"{type(self).__name__} needs a {self.config_cls.__name__}")
        self.config = config
        self.experts: tuple[str, ...] = ()
        self.vectors: dict[str, torch.Tensor] = {}  # path -> [E, d_in]
        self.present: dict[str, torch.Tensor] = {}  # path -> [E] bool: the expert adapts it

    def fit(
        self, refs: Sequence[str], vectors: Sequence[Mapping[str, np.ndarray]]
    ) -> dict[str, float]:
        """Stack each expert's vectors per module; a module an expert lacks is never routed to it."""
        if not refs or len(refs) != len(vectors):
            raise ValueError(f"{self.name}: need one set of {self.stats_kind} vectors per expert")
        paths = sorted({p for v in vectors for p in v})
        if not paths:
            raise ValueError(f"{self.name}: the experts' {self.stats_kind} statistics are empty")
        stacked, present = {}, {}
        for path in paths:
            dims = {np.shape(v[path]) for v in vectors if path in v}
            if len(dims) != 1 or len(next(iter(dims))) != 1:
                raise ValueError(f"{self.name}: {path}: vectors of different shapes {dims}")
            ((d,),) = dims
            rows = [np.asarray(v.get(path, np.zeros(d)), np.float32) for v in vectors]
            if not all(np.isfinite(r).all() for r in rows):
                raise ValueError(f"{self.name}: {path}: vectors hold NaN or infinite values")
            stacked[path] = self._prepare(torch.from_numpy(np.stack(rows)))
            present[path] = torch.tensor([path in v for v in vectors])
        self.experts, self.vectors, self.present = tuple(refs), stacked, present
        return {"modules": float(len(paths)), "experts": float(len(refs))}

    def _prepare(self, vectors: torch.Tensor) -> torch.Tensor:
        """Transform the stacked vectors [E, d] once at fit time (default: as they are)."""
        return vectors

    @abstractmethod
    def scores(self, path: str, x: torch.Tensor) -> torch.Tensor:
        """Scores [B, T, E] of each token x [B, T, d] for each expert at module `path`."""

    def gate(self, path: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(top-k mixing weights, router probabilities over all experts), both [B, T, E]."""
        if path not in self.vectors:
            raise KeyError(f"{self.name}: no vectors for module {path!r}")
        s = self.scores(path, x).masked_fill(~self.present[path], -math.inf)
        k = min(self.config.top_k, int(self.present[path].sum()))
        t = self.config.temperature
        return top_k_softmax(s, k, t), torch.softmax(s / t, dim=-1)

    def state(self) -> dict[str, np.ndarray]:
        out = {f"vectors.{p}": v.numpy() for p, v in self.vectors.items()}
        out.update({f"present.{p}": m.numpy().astype(np.uint8) for p, m in self.present.items()})
        return out

    def load_state(self, tensors: Mapping[str, np.ndarray], experts: Sequence[str]) -> None:
        vectors = {
            k[8:]: torch.from_numpy(np.asarray(v))
            for k, v in tensors.items()
            if k.startswith("vectors.")
        }
        present = {
            k[8:]: torch.from_numpy(np.asarray(v).astype(bool))
            for k, v in tensors.items()
            if k.startswith("present.")
        }
        if not vectors or set(vectors) != set(present):
            raise ValueError(
                f"{self.name}: state needs vectors.* and present.* for the same modules"
            )
        for path, v in vectors.items():
            if v.ndim != 2 or v.shape[0] != len(experts) or present[path].shape != (len(experts),):
                raise ValueError(f"{self.name}: {path}: state is not for {len(experts)} experts")
        self.experts, self.vectors, self.present = tuple(experts), vectors, present


def standardise(v: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit standard deviation over the last dimension."""
    return (v - v.mean(-1, keepdim=True)) / v.std(-1, keepdim=True).clamp_min(1e-6)
