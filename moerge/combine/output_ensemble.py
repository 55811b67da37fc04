"""output_ensemble: the top-k experts each answer; their label probabilities are averaged
with the router's weights (the "ensemble" aggregation of the MoErging survey)."""

from __future__ import annotations

from moerge.combine.base import DEFAULT_TOP_K, Combination
from moerge.combine.registry import register


@register("output_ensemble")
class OutputEnsemble(Combination):
    def top_k(self, requested: int) -> int:
        return requested if requested > 0 else DEFAULT_TOP_K
