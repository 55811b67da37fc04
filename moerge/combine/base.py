"""What a combination does: turn routing weights over experts into label predictions."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from moerge.experts.encoder import label_probs
from moerge.experts.runtime import ExpertSet

# experts per input for combinations of several, when the caller does not say
DEFAULT_TOP_K = 2


@dataclass(frozen=True)
class Prediction:
    probs: np.ndarray  # [N, L] probabilities over the candidate labels
    # per text, the experts that answered with their weights; [] means the base model
    experts: list[list[tuple[str, float]]]

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.probs.argmax(axis=1))


class Combination(ABC):
    """How the experts a router chose act together on one batch of texts."""

    name: ClassVar[str]

    @abstractmethod
    def top_k(self, requested: int) -> int:
        """How many experts per input this combination asks the router for."""

    def select(self, weights: np.ndarray) -> np.ndarray:
        """The weights [N, E] with which the chosen experts' outputs are mixed."""
        return weights

    def predict(
        self,
        experts: ExpertSet,
        refs: Sequence[str],
        weights: np.ndarray,
        abstained: np.ndarray,
        texts: Sequence[str],
        label_descriptions: Sequence[str],
    ) -> Prediction:
        """Label probabilities for texts given routing weights [N, E] over refs."""
        return mix_outputs(
            experts, refs, self.select(weights), abstained, texts, label_descriptions
        )


def mix_outputs(
    experts: ExpertSet,
    refs: Sequence[str],
    weights: np.ndarray,
    abstained: np.ndarray,
    texts: Sequence[str],
    label_descriptions: Sequence[str],
) -> Prediction:
    """Weighted average of each chosen expert's label probabilities, per text.

    Each expert runs once on the texts routed to it; texts with no expert
    (abstained) are answered by the base model.
    """
    texts = list(texts)
    n, n_labels = len(texts), len(label_descriptions)
    probs = np.zeros((n, n_labels), dtype=np.float64)
    used: list[list[tuple[str, float]]] = [[] for _ in range(n)]
    weights = np.where(abstained[:, None], 0.0, weights)  # [N, E]
    for e in (int(i) for i in np.flatnonzero((weights > 0).any(axis=0))):
        rows = np.flatnonzero(weights[:, e] > 0)
        text_emb = experts.embed([texts[i] for i in rows], refs[e])
        label_emb = experts.embed(label_descriptions, refs[e])
        probs[rows] += weights[rows, e, None] * label_probs(text_emb, label_emb)
        for i in rows:
            used[i].append((refs[e], float(weights[i, e])))
    base_rows = np.flatnonzero(weights.sum(axis=1) <= 0)
    if len(base_rows):
        text_emb = experts.embed([texts[i] for i in base_rows], None)
        probs[base_rows] = label_probs(text_emb, experts.embed(label_descriptions, None))
    for row in used:
        row.sort(key=lambda item: -item[1])
    return Prediction(probs / probs.sum(axis=1, keepdims=True), used)
