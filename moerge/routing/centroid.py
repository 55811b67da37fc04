"""Centroid routing: cosine between the input and each expert's mean embedding.

The simplest gate built from expert statistics: each expert is represented by the
normalised mean of its training inputs' embeddings (a "task embedding" in the sense of
retrieval-based MoErging, e.g. Jang et al. 2023; Ye et al. 2022), and an input goes to
the most similar one. Needs only the count and sum of the `embedding_moments`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from moerge.routing.abstain import ExpertGaussians
from moerge.routing.base import ExpertProfile, Router, RouterConfig, check_config
from moerge.routing.registry import register


@dataclass(frozen=True)
class CentroidConfig(RouterConfig):
    temperature: float = field(
        default=0.03,
        metadata={"help": "softmax temperature of the cosine scores (smaller is sharper)"},
    )
    label_weight: float = field(
        default=4.0,
        metadata={
            "help": "weight of the label-match score (added as label_weight * s_e / temperature, "
            "on the scale of a cosine); 4 lets an owned label set outweigh any text evidence "
            "once its match beats the others' by 0.5"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_config(self.temperature > 0, "temperature", self.temperature, "> 0")


@register("centroid")
class CentroidRouter(Router):
    """softmax_e((cos(x, mu_e / |mu_e|) + label_weight * s_e) / temperature)."""

    config_cls = CentroidConfig
    config: CentroidConfig
    taxonomy = {
        "routing_dataset": "expert statistics (embedding means)",
        "input_granularity": "example",
        "depth": "model",
        "selection": "top-k",
        "aggregation": "set by the combination",
    }

    def __init__(self, config: CentroidConfig | None = None) -> None:
        super().__init__(config)
        self.centroids = np.zeros((0, 0))  # [E, d] unit norm

    def _fit(
        self, profiles: Sequence[ExpertProfile], gaussians: ExpertGaussians, seed: int
    ) -> dict[str, float]:
        means = gaussians.means  # [E, d]
        self.centroids = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        return {}

    def _logits(self, texts: np.ndarray, label_scores: np.ndarray | None) -> np.ndarray:
        evidence = texts @ self.centroids.T  # [N, E]
        if label_scores is not None:
            evidence = evidence + self.config.label_weight * label_scores[None, :]
        return evidence / self.config.temperature

    def _state(self) -> dict[str, np.ndarray]:
        return {"centroids": self.centroids}

    def _load_state(self, tensors: Mapping[str, np.ndarray]) -> int:
        if "centroids" not in tensors or np.ndim(tensors["centroids"]) != 2:
            raise ValueError("centroid state needs a [E, d] tensor 'centroids'")
        self.centroids = np.asarray(tensors["centroids"], np.float64)
        return len(self.centroids)
