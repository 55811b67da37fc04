"""Retrieval routing (LoraRetriever, Zhao et al. 2024; Retrieval of Experts, Jang et al. 2023).

Each contributor may upload a few base-model embeddings of its training inputs (the
opt-in `examples` statistics). An input is routed to the experts whose examples are
most similar: an expert's evidence is the mean of the `neighbours` largest cosines
between the input and its examples. An expert that shared no examples gets the lowest
possible text evidence (-1): only candidate labels can choose it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from moerge.routing.abstain import ExpertGaussians
from moerge.routing.base import ExpertProfile, Router, RouterConfig, check_config
from moerge.routing.registry import register


@dataclass(frozen=True)
class RetrievalConfig(RouterConfig):
    neighbours: int = field(
        default=3, metadata={"help": "an expert's evidence: mean of its this many best cosines"}
    )
    temperature: float = field(
        default=0.03, metadata={"help": "softmax temperature of the evidence (smaller is sharper)"}
    )
    label_weight: float = field(
        default=4.0,
        metadata={"help": "weight of the label-match score, on the scale of a cosine"},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_config(self.neighbours >= 1, "neighbours", self.neighbours, ">= 1")
        check_config(self.temperature > 0, "temperature", self.temperature, "> 0")


@register("retrieval")
class RetrievalRouter(Router):
    """softmax_e((mean of the top-m cos(x, example of e) + label_weight * s_e) / temperature)."""

    config_cls = RetrievalConfig
    config: RetrievalConfig
    taxonomy = {
        "routing_dataset": "a few embedded training inputs per expert (opt-in)",
        "input_granularity": "example",
        "depth": "model",
        "selection": "top-k",
        "aggregation": "set by the combination",
    }

    def __init__(self, config: RetrievalConfig | None = None) -> None:
        super().__init__(config)
        self.examples = np.zeros((0, 0))  # [M, d] unit rows
        self.owner = np.zeros(0, dtype=np.int64)  # [M] ascending expert index
        self.n_experts = 0

    def _fit(
        self, profiles: Sequence[ExpertProfile], gaussians: ExpertGaussians, seed: int
    ) -> dict[str, float]:
        d = profiles[0].moments.dim
        rows, owner = [], []
        for e, p in enumerate(profiles):
            x = np.zeros((0, d)) if p.examples is None else np.asarray(p.examples, np.float64)
            if x.size and (x.ndim != 2 or x.shape[1] != d or not np.isfinite(x).all()):
                raise ValueError(f"{p.ref}: examples must be finite with shape [n, {d}]")
            rows.append(x)
            owner += [e] * len(x)
        examples = np.concatenate(rows) if rows else np.zeros((0, d))
        norms = np.maximum(np.linalg.norm(examples, axis=1, keepdims=True), 1e-12)
        self.examples, self.owner = examples / norms, np.asarray(owner, np.int64)
        self.n_experts = len(profiles)
        missing = sum(1 for r in rows if len(r) == 0)
        return {"examples": float(len(self.examples)), "experts_without_examples": float(missing)}

    def _evidence(self, texts: np.ndarray) -> np.ndarray:
        evidence = np.full((len(texts), self.n_experts), -1.0)
        if len(self.examples) == 0:
            return evidence
        cos = texts @ self.examples.T  # [N, M]
        for e in np.unique(self.owner):
            own = cos[:, self.owner == e]
            m = min(self.config.neighbours, own.shape[1])
            evidence[:, e] = -np.sort(-own, axis=1)[:, :m].mean(axis=1)
        return evidence

    def _logits(self, texts: np.ndarray, label_scores: np.ndarray | None) -> np.ndarray:
        evidence = self._evidence(texts)
        if label_scores is not None:
            evidence = evidence + self.config.label_weight * label_scores[None, :]
        return evidence / self.config.temperature

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "examples": self.examples,
            "owner": self.owner,
            "n_experts": np.array([self.n_experts], np.int64),
        }

    def _load_state(self, tensors: Mapping[str, np.ndarray]) -> int:
        try:
            examples = np.asarray(tensors["examples"], np.float64)
            owner = np.asarray(tensors["owner"], np.int64)
            n = int(np.asarray(tensors["n_experts"]).reshape(-1)[0])
        except KeyError as exc:
            raise ValueError(f"retrieval state lacks tensor {exc.args[0]!r}") from None
        if examples.ndim != 2 or owner.shape != (len(examples),):
            raise ValueError("retrieval state: examples [M, d] and owner [M] do not match")
        if len(owner) and (owner.min() < 0 or owner.max() >= n):
            raise ValueError("retrieval state: example owners out of range")
        self.examples, self.owner, self.n_experts = examples, owner, n
        return n
