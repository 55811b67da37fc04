"""output_ensemble: the top-k experts each answer; their label probabilities are averaged
with the router's weights (the "ensemble" aggregation of the MoErging survey)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moerge.combine.base import Combination, Prediction, mix_outputs
from moerge.combine.registry import register
from moerge.experts.runtime import ExpertSet

DEFAULT_TOP_K = 2


@register("output_ensemble")
class OutputEnsemble(Combination):
    def top_k(self, requested: int) -> int:
        return requested if requested > 0 else DEFAULT_TOP_K

    def predict(
        self,
        experts: ExpertSet,
        refs: Sequence[str],
        weights: np.ndarray,
        abstained: np.ndarray,
        texts: Sequence[str],
        label_descriptions: Sequence[str],
    ) -> Prediction:
        return mix_outputs(experts, refs, weights, abstained, texts, label_descriptions)
