"""token_mixture: a module-level mixture of LoRA experts, weighted per token.

Every adapted module of the base model mixes the experts' low-rank updates for each token
with the weights a token router (Arrow, PHATGOOSE) gives it; the label descriptions go
through the same mixture. The work is batched over tokens and experts
(`moerge.experts.mixture.MixtureModel.embed_gated`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moerge.combine.base import Prediction
from moerge.combine.registry import register
from moerge.experts.encoder import label_probs
from moerge.experts.mixture import GateRecord
from moerge.experts.runtime import ExpertSet
from moerge.routing.token import TokenRouter


@register("token_mixture")
class TokenMixture:
    """Not a per-input Combination: the router acts inside the model, token by token."""

    name: str

    def predict(
        self,
        experts: ExpertSet,
        router: TokenRouter,
        texts: Sequence[str],
        label_descriptions: Sequence[str],
    ) -> tuple[Prediction, GateRecord]:
        """Label probabilities, and per-input summaries of how the tokens were routed."""
        refs = router.experts
        with experts.mixing(refs) as (mixture, stack):
            text_emb, record = mixture.embed_gated(texts, stack, router.gate)
            label_emb, _ = mixture.embed_gated(label_descriptions, stack, router.gate)
        probs = label_probs(text_emb, label_emb)
        used = [
            sorted(
                ((refs[e], float(row[e])) for e in np.flatnonzero(row > 0)),
                key=lambda item: -item[1],
            )
            for row in record.mean_weights
        ]
        return Prediction(probs, used), record
