"""A table of router cases: every registered per-input routing method on the same synthetic pools.

The pool: 6 experts in d=32 whose means are random unit vectors, in overlapping pairs
(cos about 0.5-0.8 within a pair); each expert's inputs are a normalised Gaussian cluster
around its mean. Experts 4 and 5 share one label set, so with those labels the text must
decide between them. Moments are computed with compute_moments from samples; each expert
also shares 32 of its inputs as `examples` (for retrieval).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import moerge.routing as routing
from moerge.routing import (
    ROUTERS,
    TASK_ROUTERS,
    TOKEN_ROUTERS,
    ExpertProfile,
    GaussianConfig,
    Router,
    RouterFormatError,
    RoutingQuery,
    UnknownRouterError,
    create,
    dumps,
    label_match,
    loads,
    register,
)
from moerge.stats import compute_moments

E, D, SPREAD = 6, 32, 0.1
NOT_METHODS = {"base", "registry", "abstain", "serialize", "token"}
CASES: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in sorted(ROUTERS)] + [
    ("gaussian", {"covariance": "per_expert"}),
    ("gaussian", {"prior": "count", "shrinkage": 0.3}),
]
IDS = [name + "".join(f"-{v}" for v in over.values()) for name, over in CASES]


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@dataclass
class Pool:
    means: np.ndarray  # [E, d]
    labels: list[np.ndarray]  # E x [L_e, d]
    draw: Callable[[int, int], np.ndarray]

    def profiles(self, form: str = "full", with_labels: bool = True) -> list[ExpertProfile]:
        return [
            ExpertProfile(
                f"expert{i}:1",
                compute_moments(self.draw(i, 400), form=form, rank=8),
                self.labels[i] if with_labels else np.zeros((0, D)),
                examples=self.draw(i, 32),
            )
            for i in range(E)
        ]


@pytest.fixture(scope="module")
def pool() -> Pool:
    rng = np.random.default_rng(0)
    means = unit(rng.standard_normal((E, D)))
    for k in range(0, E, 2):
        means[k + 1] = unit(0.5 * means[k] + 0.5 * means[k + 1])
    labels = [unit(rng.standard_normal((int(rng.integers(2, 5)), D))) for _ in range(E)]
    labels[5] = labels[4].copy()

    def draw(i: int, n: int) -> np.ndarray:
        return unit(means[i] + SPREAD * rng.standard_normal((n, D)))

    return Pool(means, labels, draw)


@pytest.fixture(scope="module")
def heldout(pool: Pool) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([pool.draw(i, 200) for i in range(E)]), np.repeat(np.arange(E), 200)


_FITTED: dict[tuple[str, str], tuple[Router, dict[str, float]]] = {}


@pytest.fixture(params=CASES, ids=IDS)
def fitted(request: pytest.FixtureRequest, pool: Pool) -> tuple[Router, dict[str, float]]:
    name, overrides = request.param
    key = (name, repr(sorted(overrides.items())))
    if key not in _FITTED:
        router = create(name, **overrides)
        _FITTED[key] = (router, router.fit(pool.profiles(), seed=0))
    return _FITTED[key]


def test_every_registered_method_is_in_the_case_table() -> None:
    assert {name for name, _ in CASES} == set(ROUTERS)
    assert {"centroid", "gaussian", "learned_gate"} <= set(ROUTERS)


def test_routes_heldout_text_to_its_own_expert(fitted, heldout) -> None:  # type: ignore[no-untyped-def]
    router, metrics = fitted
    texts, truth = heldout
    accuracy = np.mean(router.log_probs(RoutingQuery(texts)).argmax(axis=1) == truth)
    assert accuracy >= 0.95
    assert metrics["synthetic_routing_accuracy"] >= 0.95


def test_fit_reports_label_metrics(fitted) -> None:  # type: ignore[no-untyped-def]
    _, metrics = fitted
    assert metrics["label_routing_accuracy"] >= 0.99
    assert metrics["label_conflict_accuracy"] >= 0.99
    assert metrics["synthetic_abstain_rate"] < 0.05


def test_labels_name_the_expert_whatever_the_text(fitted, pool, heldout) -> None:  # type: ignore[no-untyped-def]
    """With an expert's own label set as the candidate labels, routing goes to that expert
    for text from every region; where two experts own the labels, to one of them, and the
    text's own expert when the text comes from one of them."""
    router, _ = fitted
    texts, truth = heldout
    right = []
    for a in range(E):
        owners = [i for i in range(E) if np.array_equal(pool.labels[i], pool.labels[a])]
        chosen = router.log_probs(RoutingQuery(texts, pool.labels[a])).argmax(axis=1)
        own_text = np.isin(truth, owners)
        right.append(np.where(own_text, chosen == truth, np.isin(chosen, owners)))
    assert np.mean(np.concatenate(right)) >= 0.99


def test_abstains_far_from_every_expert_only(fitted, pool, heldout) -> None:  # type: ignore[no-untyped-def]
    router, _ = fitted
    texts, _ = heldout
    g = np.random.default_rng(1).standard_normal((100, D))
    basis, _ = np.linalg.qr(pool.means.T)  # [d, E] span of the means
    orthogonal = unit(g - (g @ basis) @ basis.T)
    far = np.concatenate([orthogonal, -pool.means])
    assert router.route(RoutingQuery(far)).abstained.all()
    assert router.route(RoutingQuery(far, pool.labels[0])).abstained.all()
    assert router.route(RoutingQuery(texts)).abstained.mean() < 0.05


def test_labels_no_expert_was_trained_on_fall_back_to_the_base_model(fitted, pool, heldout) -> None:  # type: ignore[no-untyped-def]
    router, _ = fitted
    texts, _ = heldout
    new_task = unit(np.random.default_rng(2).standard_normal((3, D)))  # no expert's labels
    assert router.route(RoutingQuery(texts, new_task)).abstained.all()
    subset = pool.labels[0][:2]  # part of one expert's label set is still its task
    assert router.route(RoutingQuery(texts, subset)).abstained.mean() < 0.05


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_route_weights_respect_top_k(fitted, pool, heldout, top_k: int) -> None:  # type: ignore[no-untyped-def]
    router, _ = fitted
    texts = np.concatenate([heldout[0][::20], -pool.means])
    result = router.route(RoutingQuery(texts), top_k=top_k)
    sums = result.weights.sum(axis=1)
    np.testing.assert_allclose(sums[~result.abstained], 1.0)
    assert (result.weights[result.abstained] == 0).all() and result.abstained[-E:].all()
    nonzero = (result.weights > 0).sum(axis=1)
    assert (nonzero[~result.abstained] == top_k).all()
    i = int(np.flatnonzero(~result.abstained)[0])
    chosen = result.chosen(i)
    assert [e for e, _ in chosen][0] == int(result.scores[i].argmax())
    assert [w for _, w in chosen] == sorted((w for _, w in chosen), reverse=True)
    with pytest.raises(ValueError, match="top_k"):
        router.route(RoutingQuery(texts), top_k=E + 1)


def test_log_probs_rows_are_log_softmax(fitted, pool, heldout) -> None:  # type: ignore[no-untyped-def]
    router, _ = fitted
    for labels in (None, pool.labels[2], pool.labels[0][:1]):
        lp = router.log_probs(RoutingQuery(heldout[0][::10], labels))
        assert lp.shape == (len(heldout[0][::10]), E) and (lp <= 0).all()
        np.testing.assert_allclose(np.log(np.exp(lp).sum(axis=1)), 0.0, atol=1e-9)


def test_serialized_router_routes_identically(fitted, pool, heldout) -> None:  # type: ignore[no-untyped-def]
    router, _ = fitted
    back = loads(dumps(router))
    assert type(back) is type(router) and back.config == router.config
    assert back.experts == router.experts == tuple(f"expert{i}:1" for i in range(E))
    for labels in (None, pool.labels[3]):
        query = RoutingQuery(heldout[0], labels)
        np.testing.assert_array_equal(back.log_probs(query), router.log_probs(query))
    far = RoutingQuery(-pool.means)
    np.testing.assert_array_equal(back.route(far).abstained, router.route(far).abstained)


@pytest.mark.parametrize("name", sorted(ROUTERS))
@pytest.mark.parametrize("form", ["diag", "lowrank"])
def test_diag_and_lowrank_moments_are_accepted(pool, heldout, name: str, form: str) -> None:  # type: ignore[no-untyped-def]
    router = create(name)
    metrics = router.fit(pool.profiles(form=form), seed=1)
    texts, truth = heldout
    assert np.mean(router.log_probs(RoutingQuery(texts)).argmax(axis=1) == truth) >= 0.9
    assert metrics["synthetic_routing_accuracy"] >= 0.9


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_experts_without_labels_route_on_text_alone(pool, heldout, name: str) -> None:  # type: ignore[no-untyped-def]
    router = create(name)
    metrics = router.fit(pool.profiles(with_labels=False))
    assert "label_routing_accuracy" not in metrics
    texts, truth = heldout
    with_labels = router.log_probs(RoutingQuery(texts, pool.labels[0]))
    np.testing.assert_allclose(with_labels, router.log_probs(RoutingQuery(texts)), atol=1e-9)
    assert np.mean(with_labels.argmax(axis=1) == truth) >= 0.95


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_each_method_declares_its_taxonomy_and_documents_its_config(name: str) -> None:
    cls = ROUTERS[name]
    assert cls.name == name
    assert {"routing_dataset", "input_granularity", "depth", "selection", "aggregation"} <= set(
        cls.taxonomy
    )
    assert cls.taxonomy["input_granularity"] == "example" and cls.taxonomy["depth"] == "model"
    for f in dataclasses.fields(cls.config_cls):
        assert f.metadata.get("help"), f"{name}.{f.name} has no help"
    assert {"label_weight", "abstain"} <= {f.name for f in dataclasses.fields(cls.config_cls)}


def test_each_method_module_registers_exactly_one_name() -> None:
    modules = {
        m.name
        for m in pkgutil.iter_modules(routing.__path__)
        if m.name not in NOT_METHODS and not m.name.startswith("_")
    }
    registered = [
        cls.__module__.rsplit(".", 1)[-1]
        for table in (ROUTERS, TOKEN_ROUTERS, TASK_ROUTERS)
        for cls in table.values()
    ]
    assert sorted(registered) == sorted(modules)
    for name in modules:
        assert importlib.import_module(f"moerge.routing.{name}") in routing.METHOD_MODULES


def test_registry_refuses_duplicates_and_bad_names() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register("centroid")(type("Again", (), {}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lowercase"):
        register("Centroid")
    assert ROUTERS["centroid"].__name__ == "CentroidRouter"


def test_unknown_method_and_bad_config_raise_clear_errors() -> None:
    with pytest.raises(UnknownRouterError, match="known: centroid, gaussian, learned_gate"):
        create("nonsense")
    with pytest.raises(ValueError, match="unknown config fields \\['bogus'\\]"):
        create("centroid", bogus=1)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        create("centroid", temperature=0.0)
    with pytest.raises(ValueError, match="covariance must be one of"):
        GaussianConfig(covariance="diagonal")
    with pytest.raises(ValueError, match="abstain"):
        create("gaussian", abstain=-1.0)
    with pytest.raises(ValueError, match="shrinkage"):
        create("gaussian", shrinkage=float("nan"))
    with pytest.raises(ValueError, match="steps"):
        create("learned_gate", steps=0)
    with pytest.raises(TypeError, match="CentroidConfig"):
        ROUTERS["centroid"](GaussianConfig())  # type: ignore[arg-type]


def test_abstain_can_be_disabled(pool, heldout) -> None:  # type: ignore[no-untyped-def]
    router = create("centroid", abstain=None)
    metrics = router.fit(pool.profiles())
    assert "synthetic_abstain_rate" not in metrics
    assert not router.route(RoutingQuery(-pool.means)).abstained.any()


def test_unfitted_router_and_bad_queries_raise(fitted) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError, match="not fitted"):
        create("centroid").log_probs(RoutingQuery(np.ones((1, D)) / np.sqrt(D)))
    router, _ = fitted
    with pytest.raises(ValueError, match=f"shape \\[N, {D}\\]"):
        router.log_probs(RoutingQuery(np.ones((2, D + 1))))
    with pytest.raises(ValueError, match=f"shape \\[L, {D}\\]"):
        router.log_probs(RoutingQuery(np.ones((2, D)), np.ones(D)))
    with pytest.raises(ValueError, match="at least one"):
        create("centroid").fit([])


def test_loads_refuses_bad_bytes_and_unknown_methods(pool) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RouterFormatError, match="pickles are refused"):
        loads(b"\x80\x04\x95not a router")
    with pytest.raises(RouterFormatError, match="safetensors"):
        loads(b"\xff" * 16)
    router = create("centroid")
    router.fit(pool.profiles())
    data = dumps(router)
    renamed = data.replace(b'"method":"centroid"', b'"method":"centroiX"')
    assert renamed != data
    with pytest.raises(RouterFormatError, match="unknown routing method 'centroiX'"):
        loads(renamed)
    with pytest.raises(RouterFormatError, match="bad centroid router state"):
        loads(dumps(router).replace(b"method.centroids", b"method.centroidz"))


def test_label_match_scores_the_owner_one() -> None:
    rng = np.random.default_rng(2)
    bank = unit(rng.standard_normal((5, D)))
    owner = np.array([0, 0, 2, 2, 2])  # expert 1 has no labels
    scores = label_match(bank[2:4], bank, owner, 3)
    assert scores[2] == pytest.approx(1.0) and scores[1] == 0.0
    expected = np.mean([max(bank[q] @ bank[0], bank[q] @ bank[1]) for q in (2, 3)])
    assert scores[0] == pytest.approx(expected)


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_fit_is_reproducible_by_seed(pool, name: str) -> None:  # type: ignore[no-untyped-def]
    profiles = pool.profiles()
    first, second = create(name), create(name)
    first.fit(profiles, seed=3)
    second.fit(profiles, seed=3)
    a, b = first.state(), second.state()
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_retrieval_without_examples_routes_by_labels_only(pool) -> None:  # type: ignore[no-untyped-def]
    profiles = pool.profiles()
    profiles[2] = dataclasses.replace(profiles[2], examples=None)
    router = create("retrieval")
    metrics = router.fit(profiles)
    assert metrics["experts_without_examples"] == 1
    texts = pool.draw(2, 50)
    assert not np.any(router.log_probs(RoutingQuery(texts)).argmax(axis=1) == 2)
    assert np.all(router.log_probs(RoutingQuery(texts, pool.labels[2])).argmax(axis=1) == 2)


def test_a_token_or_task_method_is_not_a_per_input_router() -> None:
    with pytest.raises(UnknownRouterError, match="routes per token"):
        create("arrow")
    with pytest.raises(UnknownRouterError, match="routes per task"):
        create("lorahub")
    with pytest.raises(ValueError, match="registered twice"):
        register("arrow")(type("Again", (), {}))
