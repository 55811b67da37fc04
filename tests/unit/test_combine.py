"""The expert runtime and the top1 / output_ensemble combinations on a tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moerge.combine import COMBINATIONS, get
from moerge.experts.encoder import Encoder, label_probs
from moerge.experts.runtime import ExpertSet
from tests.conftest import ExpertFactory

TEXTS = ["the cat and the dog", "code with a bug", "the sun and rain", "a law court"]
LABELS = ["animals", "computers", "weather"]


@pytest.fixture
def pool(make_expert: ExpertFactory, tiny_base: tuple[Path, object]) -> tuple[ExpertSet, list[str]]:
    paths = {f"e{i}:1": make_expert(f"e{i}", seed=i) for i in range(3)}
    return ExpertSet(tiny_base[0], paths.__getitem__, capacity=2), list(paths)


def test_experts_change_embeddings_and_the_base_stays_the_base(
    pool: tuple[ExpertSet, list[str]], tiny_base: tuple[Path, object]
) -> None:
    experts, refs = pool
    fresh = Encoder.from_dir(tiny_base[0]).embed(TEXTS)
    np.testing.assert_allclose(experts.embed(TEXTS, None), fresh, atol=1e-6)
    first = experts.embed(TEXTS, refs[0])
    assert not np.allclose(first, fresh, atol=1e-3)
    np.testing.assert_allclose(experts.embed(TEXTS, None), fresh, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)


def test_the_cache_is_bounded_and_reloads_what_it_evicted(
    pool: tuple[ExpertSet, list[str]],
) -> None:
    experts, refs = pool
    first = experts.embed(TEXTS, refs[0])
    for ref in refs:
        experts.embed(TEXTS, ref)
    assert len(experts.loaded) == 2 and refs[0] not in experts.loaded
    np.testing.assert_allclose(experts.embed(TEXTS, refs[0]), first, atol=1e-6)
    assert experts.loads == 4


def _alone(experts: ExpertSet, ref: str | None) -> np.ndarray:
    return label_probs(experts.embed(TEXTS, ref), experts.embed(LABELS, ref))


def test_top1_answers_with_the_best_expert_and_abstained_rows_with_the_base(
    pool: tuple[ExpertSet, list[str]],
) -> None:
    experts, refs = pool
    weights = np.array([[0.7, 0.3, 0], [0, 0.4, 0.6], [1, 0, 0], [0.5, 0.5, 0]])
    abstained = np.array([False, False, False, True])
    out = get("top1")().predict(experts, refs, weights, abstained, TEXTS, LABELS)
    np.testing.assert_allclose(out.probs[0], _alone(experts, refs[0])[0], atol=1e-6)
    np.testing.assert_allclose(out.probs[1], _alone(experts, refs[2])[1], atol=1e-6)
    np.testing.assert_allclose(out.probs[3], _alone(experts, None)[3], atol=1e-6)
    assert out.experts[0] == [(refs[0], 1.0)] and out.experts[3] == []


def test_output_ensemble_averages_probabilities_with_the_routing_weights(
    pool: tuple[ExpertSet, list[str]],
) -> None:
    experts, refs = pool
    weights = np.array([[0.25, 0.75, 0]] * len(TEXTS))
    out = get("output_ensemble")().predict(
        experts, refs, weights, np.zeros(len(TEXTS), bool), TEXTS, LABELS
    )
    expected = 0.25 * _alone(experts, refs[0]) + 0.75 * _alone(experts, refs[1])
    np.testing.assert_allclose(out.probs, expected, atol=1e-6)
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0)
    assert [r for r, _ in out.experts[0]] == [refs[1], refs[0]]


def test_combinations_register_by_name() -> None:
    assert {"top1", "output_ensemble"} <= set(COMBINATIONS)
    assert get("top1")().top_k(5) == 1 and get("output_ensemble")().top_k(0) == 2
    with pytest.raises(KeyError, match="unknown combination"):
        get("nope")
