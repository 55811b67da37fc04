"""PHATGOOSE (Muqeeth et al. 2024): per-token routing with gates trained by contributors.

Each contributor trains one sigmoid gate vector per adapted module after its expert
(`moerge.stats.phatgoose`), with everything else frozen. To route, the token's module
input and every expert's gate are standardised (zero mean, unit variance over the
features), scored by their dot product over sqrt(d), and the top-k (default 2) experts
are mixed with a softmax over their scores.
"""

from __future__ import annotations

import math

import torch

from moerge.routing.registry import register
from moerge.routing.token import TokenRouter, standardise


@register("phatgoose", granularity="token")
class PhatgooseRouter(TokenRouter):
    """weights_t = softmax over top-k of <std(x_t), std(g_e)> / sqrt(d), per module."""

    stats_kind = "phatgoose_gates"
    taxonomy = {
        "routing_dataset": "expert's own training data (gates trained after the expert)",
        "input_granularity": "token",
        "depth": "module",
        "selection": "top-k",
        "aggregation": "mixture of the modules' outputs",
    }

    def _prepare(self, vectors: torch.Tensor) -> torch.Tensor:
        return standardise(vectors) / math.sqrt(vectors.shape[-1])

    def scores(self, path: str, x: torch.Tensor) -> torch.Tensor:
        return standardise(x) @ self.vectors[path].T
