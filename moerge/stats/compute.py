"""Computing an expert's routing statistics from its training inputs, on the contributor's side.

The statistics describe the inputs as the frozen base model sees them (its
pooled embeddings), not as the expert does: the coordinator routes a query by
embedding it with the base model before it knows which expert to use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from moerge.experts.encoder import Encoder
from moerge.stats.files import write_moments
from moerge.stats.moments import Moments, compute_moments


def embedding_moments(
    encoder: Encoder,
    texts: Sequence[str],
    *,
    noise_multiplier: float = 0.0,
    form: str = "auto",
    seed: int = 0,
) -> Moments:
    """embedding_moments of texts under the base model `encoder` (no adapter)."""
    if not texts:
        raise ValueError("no texts to compute statistics from")
    embeddings = encoder.embed(list(texts))  # [N, d]
    return compute_moments(embeddings, form=form, noise_multiplier=noise_multiplier, seed=seed)


def write_expert_stats(
    expert_dir: Path,
    base_dir: Path,
    texts: Sequence[str],
    *,
    noise_multiplier: float = 0.0,
    form: str = "auto",
    seed: int = 0,
    encoder: Encoder | None = None,
) -> Moments:
    """Compute embedding_moments of the training texts and store them in the expert directory."""
    encoder = encoder or Encoder.from_dir(Path(base_dir))
    moments = embedding_moments(
        encoder, texts, noise_multiplier=noise_multiplier, form=form, seed=seed
    )
    write_moments(Path(expert_dir), moments)
    return moments
