"""`examples` statistics: a few base-model embeddings of an expert's training inputs.

Opt-in: these are embeddings of real inputs, so they reveal more about the data than
moments do (an embedding can be matched against candidate texts). Retrieval routing
(LoraRetriever, Retrieval of Experts) compares a query with them directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from moerge.experts.encoder import Encoder
from moerge.stats.files import write_stats
from moerge.stats.kinds import MAX_EXAMPLES

KIND = "examples"


def example_embeddings(
    encoder: Encoder, texts: Sequence[str], count: int, *, seed: int = 0
) -> np.ndarray:
    """Base-model embeddings of `count` training inputs drawn without replacement. [n, d]"""
    if not 0 < count <= MAX_EXAMPLES:
        raise ValueError(f"examples: count must be in 1..{MAX_EXAMPLES}, got {count}")
    if not texts:
        raise ValueError("examples: no texts to draw from")
    rng = np.random.default_rng([seed, 2027])
    chosen = rng.choice(len(texts), size=min(count, len(texts)), replace=False)
    return encoder.embed([texts[int(i)] for i in sorted(chosen)])


def write_examples(
    expert_dir: Path, encoder: Encoder, texts: Sequence[str], count: int, *, seed: int = 0
) -> Path:
    embeddings = example_embeddings(encoder, texts, count, seed=seed)
    meta = {"count": len(embeddings), "requested": count}
    return write_stats(expert_dir, KIND, {"embeddings": embeddings}, meta)
