"""Arrow (Ostapenko et al. 2024): per-token routing with prototypes read off the adapters.

Each expert's prototype at a module is the top right-singular vector of its update B A
(`moerge.stats.arrow`, stored by the coordinator as `arrow` statistics). A token x is
scored |<x, v_e>| (the sign of a singular vector is arbitrary), and the top-k experts
are mixed with a softmax over their scores. No data is needed, only the adapters.
PEFT's `ArrowLoraLinearLayer` implements the same rule; this one exposes the per-token
weights for routing analysis and shares the batched mixture with PHATGOOSE.
"""

from __future__ import annotations

import torch

from moerge.routing.registry import register
from moerge.routing.token import TokenRouter


@register("arrow", granularity="token")
class ArrowRouter(TokenRouter):
    """weights_t = softmax over top-k of |x_t . v_e| / temperature, per module."""

    stats_kind = "arrow"
    taxonomy = {
        "routing_dataset": "none: prototypes from the adapters' weights (SVD)",
        "input_granularity": "token",
        "depth": "module",
        "selection": "top-k",
        "aggregation": "mixture of the modules' outputs",
    }

    def scores(self, path: str, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.vectors[path].T).abs()
