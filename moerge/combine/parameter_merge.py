"""parameter_merge: the chosen experts' parameters are merged, and the merged expert answers.

Inputs routed to the same set of experts form a group; the group's weights are the mean
of its rows' routing weights, and one merged update per module (`linear`, `task_arithmetic`
or `ties`, see `moerge.combine.merging`) serves the whole group in one forward pass.
Called with uniform weights over every expert, it is a merge of the whole pool
(AdapterSoup-style averaging with `linear`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from moerge.combine.base import DEFAULT_TOP_K, Combination, Prediction
from moerge.combine.merging import MergeConfig, merge_stack
from moerge.combine.registry import register
from moerge.experts.encoder import label_probs
from moerge.experts.runtime import ExpertSet


@register("parameter_merge")
class ParameterMerge(Combination):
    def __init__(self, config: MergeConfig | None = None) -> None:
        self.config = config or MergeConfig()

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
        texts = list(texts)
        weights = np.where(abstained[:, None], 0.0, np.asarray(weights, np.float64))
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, row in enumerate(weights):
            groups[tuple(int(e) for e in np.flatnonzero(row > 0))].append(i)
        probs = np.zeros((len(texts), len(label_descriptions)))
        used: list[list[tuple[str, float]]] = [[] for _ in texts]
        base_rows = groups.pop((), [])
        for chosen, rows in groups.items():
            w = weights[np.ix_(rows, list(chosen))].mean(axis=0)
            w = w / w.sum()
            with experts.mixing(refs) as (mixture, stack):
                deltas = merge_stack(stack.select(chosen), torch.from_numpy(w).float(), self.config)
                with mixture.merged(deltas):
                    text_emb = mixture.embed([texts[i] for i in rows])
                    label_emb = mixture.embed(label_descriptions)
            probs[rows] = label_probs(text_emb, label_emb)
            for i in rows:
                used[i] = sorted(
                    ((refs[e], float(x)) for e, x in zip(chosen, w, strict=True)),
                    key=lambda item: -item[1],
                )
        if base_rows:
            text_emb = experts.embed([texts[i] for i in base_rows], None)
            probs[base_rows] = label_probs(text_emb, experts.embed(label_descriptions, None))
        return Prediction(probs, used)
