"""top1: each input is answered by the single expert the router ranks first."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moerge.combine.base import Combination, Prediction, mix_outputs
from moerge.combine.registry import register
from moerge.experts.runtime import ExpertSet


@register("top1")
class Top1(Combination):
    def top_k(self, requested: int) -> int:
        return 1

    def predict(
        self,
        experts: ExpertSet,
        refs: Sequence[str],
        weights: np.ndarray,
        abstained: np.ndarray,
        texts: Sequence[str],
        label_descriptions: Sequence[str],
    ) -> Prediction:
        # [N, E] -> one-hot of each row's best expert (rows of zeros stay zero)
        best = np.zeros_like(weights)
        rows = np.flatnonzero(weights.max(axis=1) > 0)
        best[rows, weights[rows].argmax(axis=1)] = 1.0
        return mix_outputs(experts, refs, best, abstained, texts, label_descriptions)
