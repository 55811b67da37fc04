"""Experts merged into the base model or mixed per token, on a tiny model and real PEFT adapters:
Arrow prototypes, PHATGOOSE gates, token_mixture, merging (TIES, task arithmetic), LoraHub."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from moerge.combine.merging import MergeConfig, linear, lorahub, merge_stack, task_arithmetic, ties
from moerge.combine.parameter_merge import ParameterMerge
from moerge.combine.token_mixture import TokenMixture
from moerge.combine.top1 import Top1
from moerge.experts.encoder import label_probs
from moerge.experts.manifest import ADAPTER_WEIGHTS, Label
from moerge.experts.mixture import ExpertStack, MixtureError, MixtureModel, read_lora, top_k_softmax
from moerge.experts.runtime import ExpertSet
from moerge.routing import LoraHub, LoraHubConfig, TokenRouterConfig
from moerge.routing.arrow import ArrowRouter
from moerge.routing.phatgoose import PhatgooseRouter
from moerge.stats.arrow import arrow_prototypes, top_right_singular, write_arrow
from moerge.stats.files import read_stats
from moerge.stats.kinds import StatsShapeError, validate_stats
from moerge.stats.phatgoose import GateConfig, train_gates, write_gates
from moerge.tasks.core import Example, TaskData
from tests.conftest import ExpertFactory

TEXTS = ["the cat and the dog", "code with a bug", "the sun and rain", "a law court", "a poem"]
LABELS = ["animals", "computers", "weather"]


@pytest.fixture
def experts(make_expert: ExpertFactory) -> dict[str, Path]:
    return {f"e{i}:1": make_expert(f"e{i}", seed=i) for i in range(3)}


@pytest.fixture
def expert_set(tiny_base: tuple[Path, object], experts: dict[str, Path]) -> ExpertSet:
    return ExpertSet(tiny_base[0], experts.__getitem__, capacity=4)


def _task() -> TaskData:
    labels = (Label("pos", "a cat and a dog"), Label("neg", "code with a bug"))
    train = tuple(
        Example(text, label)
        for text, label in [
            ("the cat", "pos"),
            ("the dog and the cat", "pos"),
            ("a dog", "pos"),
            ("code", "neg"),
            ("a bug in code", "neg"),
            ("the bug", "neg"),
        ]
        * 3
    )
    return TaskData("toy", "toy task", labels, train, train[:4], train[:4])


# Arrow -----------------------------------------------------------------------------------
def test_arrow_prototypes_are_the_top_right_singular_vectors_of_b_a(
    experts: dict[str, Path],
) -> None:
    path = next(iter(experts.values()))
    factors, scale = read_lora(path)
    prototypes, sigmas = arrow_prototypes(path)
    assert set(prototypes) == set(factors) and len(factors) == 4  # query, value x 2 layers
    for module, (a, b) in factors.items():
        _, s, vh = torch.linalg.svd(b.double() @ a.double())  # independently, on the full B A
        v = torch.from_numpy(prototypes[module]).double()
        assert abs(float(v @ vh[0])) == pytest.approx(1.0, abs=1e-5)
        assert sigmas[module] == pytest.approx(scale * float(s[0]), rel=1e-5)
    # and on random factors of another shape, with the sign fixed by the largest entry
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 11, generator=g), torch.randn(7, 3, generator=g)
    v, sigma = top_right_singular(a, b)
    _, s, vh = torch.linalg.svd(b @ a)
    assert abs(float(v @ vh[0])) == pytest.approx(1.0, abs=1e-5)
    assert sigma == pytest.approx(float(s[0]), rel=1e-5)
    assert v[v.abs().argmax()] > 0


def test_arrow_statistics_are_stored_and_valid(experts: dict[str, Path]) -> None:
    path = next(iter(experts.values()))
    write_arrow(path)
    tensors, meta = read_stats(path, "arrow")
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    validate_stats("arrow", shapes, meta, hidden_size=32)
    assert set(meta["singular_values"]) == set(tensors)
    with pytest.raises(StatsShapeError, match="module path"):
        validate_stats("arrow", {"not a path!": (32,)}, {}, 32)
    with pytest.raises(StatsShapeError, match="must be a vector"):
        validate_stats("phatgoose_gates", {"encoder.q": (32, 2)}, {}, 32)
    with pytest.raises(StatsShapeError, match=r"\[n, 32\]"):
        validate_stats("examples", {"embeddings": (3, 16)}, {}, 32)


# token_mixture -----------------------------------------------------------------------------
def _fixed_gate(weights: list[float]):  # type: ignore[no-untyped-def]
    w = torch.tensor(weights)

    def gate(path: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = w.expand(*x.shape[:-1], len(weights))
        return out, out

    return gate


def test_token_mixture_of_one_expert_is_that_expert(
    expert_set: ExpertSet, experts: dict[str, Path]
) -> None:
    ref = "e0:1"
    alone = expert_set.embed(TEXTS, ref)
    router = ArrowRouter(TokenRouterConfig(top_k=1))
    router.fit([ref], [arrow_prototypes(experts[ref])[0]])
    prediction, record = TokenMixture().predict(expert_set, router, TEXTS, LABELS)
    expected = label_probs(alone, expert_set.embed(LABELS, ref))
    np.testing.assert_allclose(prediction.probs, expected, atol=1e-5)
    np.testing.assert_allclose(record.mean_weights, 1.0)
    assert np.all(record.active == 1) and np.allclose(record.entropy, 0.0)
    assert all(used == [(ref, 1.0)] for used in prediction.experts)


def test_token_mixture_with_weights_one_and_zero_is_the_first_expert(
    expert_set: ExpertSet, experts: dict[str, Path]
) -> None:
    refs = list(experts)
    with expert_set.mixing(refs) as (mixture, stack):
        mixed, record = mixture.embed_gated(TEXTS, stack, _fixed_gate([1.0, 0.0, 0.0]))
        other, _ = mixture.embed_gated(TEXTS, stack, _fixed_gate([0.0, 1.0, 0.0]))
        half, _ = mixture.embed_gated(TEXTS, stack, _fixed_gate([0.5, 0.5, 0.0]))
    np.testing.assert_allclose(mixed, expert_set.embed(TEXTS, refs[0]), atol=1e-5)
    np.testing.assert_allclose(other, expert_set.embed(TEXTS, refs[1]), atol=1e-5)
    assert not np.allclose(half, mixed, atol=1e-4)
    assert np.all(record.active == 1)
    # the base model is untouched outside the mixing block
    np.testing.assert_allclose(mixture.embed(TEXTS), expert_set.embed(TEXTS, None), atol=1e-6)


@pytest.mark.parametrize("cls", [ArrowRouter, PhatgooseRouter])
def test_token_routing_weights_sum_to_one_and_respect_top_k(cls: type) -> None:
    g = torch.Generator().manual_seed(1)
    vectors = [{"m": torch.randn(16, generator=g).numpy()} for _ in range(5)]
    for k in (1, 2, 3):
        router = cls(TokenRouterConfig(top_k=k))
        router.fit([f"e{i}" for i in range(5)], vectors)
        weights, probs = router.gate("m", torch.randn(4, 7, 16, generator=g))
        assert weights.shape == (4, 7, 5)
        torch.testing.assert_close(weights.sum(-1), torch.ones(4, 7))
        torch.testing.assert_close(probs.sum(-1), torch.ones(4, 7))
        assert int((weights > 0).sum(-1).max()) <= k
        # the chosen experts are the top-k of the router's own probabilities
        chosen = torch.topk(probs, k, dim=-1).indices
        assert torch.all(torch.gather(weights, -1, chosen) > 0)


def test_a_module_an_expert_does_not_adapt_is_never_routed_to_it() -> None:
    router = ArrowRouter(TokenRouterConfig(top_k=2))
    router.fit(["a", "b"], [{"m": np.ones(4), "n": np.ones(4)}, {"m": np.ones(4)}])
    weights, _ = router.gate("n", torch.randn(1, 3, 4))
    assert torch.all(weights[..., 1] == 0) and torch.allclose(weights[..., 0], torch.ones(1, 3))
    restored = ArrowRouter()
    restored.load_state(router.state(), ["a", "b"])
    torch.testing.assert_close(restored.vectors["m"], router.vectors["m"])
    with pytest.raises(ValueError, match="different shapes"):
        ArrowRouter().fit(["a", "b"], [{"m": np.ones(4)}, {"m": np.ones(3)}])


def test_top_k_softmax() -> None:
    scores = torch.tensor([[3.0, 1.0, 2.0, -1.0]])
    out = top_k_softmax(scores, 2)
    expected = torch.softmax(torch.tensor([3.0, 2.0]), 0)
    torch.testing.assert_close(out, torch.tensor([[expected[0], 0.0, expected[1], 0.0]]))


# PHATGOOSE ---------------------------------------------------------------------------------
def _digest(model: torch.nn.Module) -> str:
    """Of every weight by name (a module wrapped for mixing keeps its weights under .base.)."""
    h = hashlib.sha256()
    state = {k.replace(".base.", "."): v for k, v in model.state_dict().items()}
    for name, tensor in sorted(state.items()):
        h.update(name.encode())
        h.update(tensor.numpy().tobytes())
    return h.hexdigest()


def test_phatgoose_gate_training_leaves_base_and_expert_bit_identical(
    tiny_base: tuple[Path, object], experts: dict[str, Path]
) -> None:
    path = experts["e0:1"]
    adapter_before = (path / ADAPTER_WEIGHTS).read_bytes()
    mixture = MixtureModel(tiny_base[0])
    base_before = _digest(mixture.model)
    stack_before = ExpertStack.from_dirs(["e"], [path])
    config = GateConfig(steps=8, learning_rate=0.05, batch_size=6)
    result = train_gates(tiny_base[0], path, _task(), config, mixture=mixture)
    assert _digest(mixture.model) == base_before
    assert (path / ADAPTER_WEIGHTS).read_bytes() == adapter_before
    stack_after = ExpertStack.from_dirs(["e"], [path])
    for module, f in stack_before.modules.items():
        assert torch.equal(f.A, stack_after.modules[module].A)
        assert torch.equal(f.B, stack_after.modules[module].B)
    assert set(result.gates) == set(stack_before.modules)
    assert all(np.abs(g).max() > 0 for g in result.gates.values())  # the gates did train
    assert len(result.losses) == 8 and 0 < result.mean_gate < 1
    write_gates(path, result, config)
    tensors, meta = read_stats(path, "phatgoose_gates")
    validate_stats("phatgoose_gates", {k: v.shape for k, v in tensors.items()}, meta, 32)
    router = PhatgooseRouter()
    router.fit(["e0:1"], [tensors])
    assert router.experts == ("e0:1",)


# merging -----------------------------------------------------------------------------------
def test_task_arithmetic_and_ties_match_a_hand_computation() -> None:
    deltas = torch.tensor(
        [
            [[1.0, -2.0], [0.5, 4.0]],
            [[-3.0, 1.0], [0.25, 2.0]],
            [[2.0, 0.1], [-1.0, -0.5]],
        ]
    )
    weights = torch.tensor([1.0, 0.5, 1.0])
    # task arithmetic: lambda * sum_e w_e d_e
    expected_ta = 0.4 * torch.tensor([[1.5, -1.4], [-0.375, 4.5]])
    torch.testing.assert_close(task_arithmetic(deltas, weights, 0.4), expected_ta)
    # linear: the weighted average
    torch.testing.assert_close(
        linear(deltas, weights), torch.tensor([[1.5, -1.4], [-0.375, 4.5]]) / 2.5
    )
    # TIES, density 0.5: each expert keeps its 2 largest |w_e d_e| of 4
    #   w d:  e0 [[1, -2], [0.5, 4]]  -> keep -2, 4
    #         e1 [[-1.5, 0.5], [0.125, 1]] -> keep -1.5, 1
    #         e2 [[2, 0.1], [-1, -0.5]] -> keep 2, -1
    #   trimmed sums: [[0.5, -2], [-1, 5]] -> signs [[+, -], [-, +]]
    #   disjoint means: (0,0): only e2's 2 agrees -> 2; (0,1): -2; (1,0): -1; (1,1): (4 + 1) / 2
    expected_ties = 2.0 * torch.tensor([[2.0, -2.0], [-1.0, 2.5]])
    torch.testing.assert_close(ties(deltas, weights, density=0.5, scale=2.0), expected_ties)
    with pytest.raises(ValueError, match="one weight per expert"):
        ties(deltas, torch.ones(2))
    with pytest.raises(ValueError, match="unknown merge method"):
        MergeConfig("average")


def test_a_linear_merge_of_one_expert_is_that_expert(
    expert_set: ExpertSet, experts: dict[str, Path]
) -> None:
    refs = list(experts)
    n = len(TEXTS)
    one_hot = np.zeros((n, 3))
    one_hot[:, 1] = 1.0
    merged = ParameterMerge().predict(expert_set, refs, one_hot, np.zeros(n, bool), TEXTS, LABELS)
    alone = Top1().predict(expert_set, refs, one_hot, np.zeros(n, bool), TEXTS, LABELS)
    np.testing.assert_allclose(merged.probs, alone.probs, atol=1e-5)
    # groups: rows routed to different experts are merged separately; abstained rows get the base
    weights = np.array([[0.5, 0.5, 0], [0, 0, 1.0], [0.5, 0.5, 0], [0, 1.0, 0], [1.0, 0, 0]])
    abstained = np.array([False, False, False, False, True])
    out = ParameterMerge(MergeConfig("ties")).predict(
        expert_set, refs, weights, abstained, TEXTS, LABELS
    )
    assert out.experts[0] == out.experts[2] == [("e0:1", 0.5), ("e1:1", 0.5)]
    assert out.experts[4] == []
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0)


def test_lorahub_merges_the_factors(experts: dict[str, Path]) -> None:
    stack = ExpertStack.from_dirs(list(experts), list(experts.values()))
    w = torch.tensor([0.5, -1.0, 2.0])
    merged = lorahub(stack, w)
    for module, f in stack.modules.items():
        a = sum(w[e] * f.A[e] for e in range(3))
        b = sum(w[e] * f.B[e] for e in range(3))
        torch.testing.assert_close(merged[module], f.scale[0] * b @ a)
    uniform = merge_stack(stack, torch.ones(3) / 3, MergeConfig("linear"))
    for module, d in stack.deltas().items():
        torch.testing.assert_close(uniform[module], d.mean(0))


def test_lorahub_improves_its_objective_over_uniform_weights(
    expert_set: ExpertSet, experts: dict[str, Path]
) -> None:
    task = _task()
    texts = [e.text for e in task.train[:6]]
    truth = np.array([0 if e.label == "pos" else 1 for e in task.train[:6]])
    hub = LoraHub(LoraHubConfig(budget=30, seed=0))
    with expert_set.mixing(list(experts)) as (mixture, stack):
        result = hub.fit_task(mixture, stack, texts, truth, [x.text for x in task.labels])
    assert result.evaluations <= 30 and len(result.history) == result.evaluations
    assert result.objective < result.uniform_objective
    assert result.objective == min(result.history)
    assert np.all(np.abs(result.weights) <= 1.5)


def test_stacks_refuse_what_cannot_be_mixed(
    make_expert: ExpertFactory, tiny_base: tuple[Path, object]
) -> None:
    a = make_expert("a", rank=2, targets=("query",))
    b = make_expert("b", rank=4, targets=("query", "value"))
    stack = ExpertStack.from_dirs(["a", "b"], [a, b])  # different ranks and modules: padded
    assert len(stack.modules) == 4
    value = next(p for p in stack.modules if p.endswith("value"))
    assert torch.all(stack.modules[value].A[0] == 0)  # a does not adapt value
    with pytest.raises(MixtureError, match="one directory per ref"):
        ExpertStack.from_dirs(["a"], [a, b])
    mixture = MixtureModel(tiny_base[0])
    with pytest.raises(MixtureError, match="no module"):
        mixture.adapt(["encoder.layer.9.attention.self.query"])
