"""top1: each input is answered by the single expert the router ranks first."""

from __future__ import annotations

import numpy as np

from moerge.combine.base import Combination
from moerge.combine.registry import register


@register("top1")
class Top1(Combination):
    def top_k(self, requested: int) -> int:
        return 1

    def select(self, weights: np.ndarray) -> np.ndarray:
        # [N, E] -> one-hot of each row's best expert (rows of zeros stay zero)
        best = np.zeros_like(weights)
        rows = np.flatnonzero(weights.max(axis=1) > 0)
        best[rows, weights[rows].argmax(axis=1)] = 1.0
        return best
