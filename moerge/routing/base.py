"""What every routing method shares: profiles, queries, routings and the Router base class.

A router is a global gating function over a fixed set of experts, fit from per-expert
profiles (routing statistics and label descriptions, never raw data). It maps queries, the
base model's L2-normalised embeddings of texts plus optionally the embeddings of the
candidate label descriptions, to weights over experts.

Candidate labels name the task: s_e, the mean over query labels of the best cosine with
expert e's label descriptions, is 1 for an expert that owns the query's label set. Every
router adds it as evidence strong enough that an owned label set outweighs the text (an
expert trained on that very task is the right one whatever the text looks like), while the
text still decides between experts sharing the label set and when no labels are given.
The abstain rule looks at the text alone.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from moerge.routing.abstain import DEFAULT_THRESHOLD, AbstainRule, ExpertGaussians
from moerge.stats.moments import Moments

EVAL_DRAWS_PER_EXPERT = 200


@dataclass(frozen=True, eq=False)
class ExpertProfile:
    ref: str  # "name:version"
    moments: Moments
    label_embeddings: np.ndarray  # [L, d] L2-normalised; L may be 0
    examples: np.ndarray | None = None  # [n, d] embedded training inputs (opt-in), or None


@dataclass(frozen=True, eq=False)
class RoutingQuery:
    texts: np.ndarray  # [N, d] L2-normalised
    labels: np.ndarray | None = None  # [L, d] candidate labels shared by the batch, or None


@dataclass(frozen=True, eq=False)
class Routing:
    weights: np.ndarray  # [N, E] top-k chosen sum to 1; an abstained row is all zeros
    abstained: np.ndarray  # [N] bool
    scores: np.ndarray  # [N, E] log-probabilities over experts, before top-k

    def chosen(self, i: int) -> list[tuple[int, float]]:
        """(expert index, weight) of row i's chosen experts, by weight, largest first."""
        row = self.weights[i]
        picked = np.flatnonzero(row > 0)
        return sorted(((int(e), float(row[e])) for e in picked), key=lambda t: -t[1])


@dataclass(frozen=True)
class RouterConfig:
    """Knobs every router has."""

    label_weight: float = field(
        default=1.0,
        metadata={"help": "weight of the candidate-label match evidence when labels are given"},
    )
    abstain: float | None = field(
        default=DEFAULT_THRESHOLD,
        metadata={
            "help": "abstain when every expert's Mahalanobis ratio (distance over its expected "
            "value) exceeds this; None never abstains"
        },
    )
    abstain_shrinkage: float = field(
        default=0.1, metadata={"help": "shrinkage of the abstain rule's pooled covariance"}
    )
    label_abstain: float | None = field(
        default=0.9,
        metadata={
            "help": "when candidate labels are given and no expert's labels match them this "
            "well (label-match score, 1 = the same descriptions), no expert was trained for the "
            "task: abstain for the whole batch; None never does"
        },
    )

    def __post_init__(self) -> None:
        check_config(self.label_weight >= 0, "label_weight", self.label_weight, ">= 0")
        if self.abstain is not None:
            check_config(self.abstain > 0, "abstain", self.abstain, "> 0 or None")
        check_config(0 <= self.abstain_shrinkage <= 1, "abstain_shrinkage", self.abstain_shrinkage)
        if self.label_abstain is not None:
            check_config(0 <= self.label_abstain <= 1, "label_abstain", self.label_abstain)


def check_config(ok: bool, name: str, value: object, rule: str = "in [0, 1]") -> None:
    if not ok or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"{name} must be {rule}, got {value!r}")


def label_match(
    query_labels: np.ndarray, bank: np.ndarray, owner: np.ndarray, e: int
) -> np.ndarray:
    """s_e = mean over query labels q of max over expert e's labels l of cos(q, l): [E].

    An expert owning exactly the query's label set scores 1; one without labels scores 0.
    `bank` [L, d] holds every expert's label embeddings, grouped by `owner` [L] (ascending).
    """
    if len(query_labels) == 0:
        return np.zeros(e)
    return best_label_match(query_labels, bank, owner, e).mean(axis=0)


def best_label_match(
    query_labels: np.ndarray, bank: np.ndarray, owner: np.ndarray, e: int
) -> np.ndarray:
    """max over expert e's labels l of cos(q, l), for each query label q: [Lq, E] (0 where
    the expert has no labels)."""
    best = np.zeros((len(query_labels), e))
    if len(bank) == 0:
        return best
    cos = np.asarray(query_labels, np.float64) @ bank.T  # [Lq, L]
    has = np.bincount(owner, minlength=e) > 0  # [E]
    starts = np.searchsorted(owner, np.flatnonzero(has))
    best[:, has] = np.maximum.reduceat(cos, starts, axis=1)
    return best


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class Router(ABC):
    """A gating function over experts; subclasses implement _fit, _logits and the state hooks."""

    name: ClassVar[str]
    config_cls: ClassVar[type[RouterConfig]]
    taxonomy: ClassVar[dict[str, str]]

    def __init__(self, config: RouterConfig | None = None) -> None:
        config = self.config_cls() if config is None else config
        if not isinstance(config, self.config_cls):
            raise TypeError(f"{type(self).__name__} needs a {self.config_cls.__name__}")
        self.config = config
        self.experts: tuple[str, ...] = ()
        self.abstain_rule = AbstainRule()
        self.label_bank = np.zeros((0, 0))  # [L, d] every expert's label embeddings
        self.label_owner = np.zeros(0, dtype=np.int64)  # [L] expert index of each label

    # fitting ---------------------------------------------------------------------------
    def fit(self, profiles: Sequence[ExpertProfile], seed: int = 0) -> dict[str, float]:
        """Fit from expert profiles; returns metrics on fresh draws from the experts' Gaussians."""
        _check_profiles(profiles)
        self.experts = tuple(p.ref for p in profiles)
        self.label_bank = np.concatenate(
            [
                np.asarray(p.label_embeddings, np.float64).reshape(-1, p.moments.dim)
                for p in profiles
            ]
        )
        self.label_owner = np.repeat(
            np.arange(len(profiles)), [len(p.label_embeddings) for p in profiles]
        ).astype(np.int64)
        gaussians = ExpertGaussians.of([p.moments for p in profiles])
        self.abstain_rule.fit(gaussians, self.config.abstain_shrinkage)
        metrics = self._fit(profiles, gaussians, seed)
        metrics.update(synthetic_metrics(self, profiles, gaussians, seed))
        return metrics

    @abstractmethod
    def _fit(
        self, profiles: Sequence[ExpertProfile], gaussians: ExpertGaussians, seed: int
    ) -> dict[str, float]:
        """Fit the method's parameters; returns method-specific metrics."""

    # routing ---------------------------------------------------------------------------
    def label_scores(self, labels: np.ndarray | None) -> np.ndarray | None:
        """The label-match score s_e of each expert for the batch's labels: [E], or None
        when there is no label evidence (no query labels, or no expert has labels)."""
        if labels is None or len(labels) == 0 or len(self.label_bank) == 0:
            return None
        return label_match(labels, self.label_bank, self.label_owner, len(self.experts))

    def log_probs(self, query: RoutingQuery) -> np.ndarray:
        """[N, E] log-probabilities over experts (rows are log-softmax)."""
        texts = self._checked_texts(query)
        return log_softmax(self._logits(texts, self.label_scores(self._checked_labels(query))))

    @abstractmethod
    def _logits(self, texts: np.ndarray, label_scores: np.ndarray | None) -> np.ndarray:
        """Unnormalised scores [N, E] from texts [N, d] and label-match scores [E] or None."""

    def route(self, query: RoutingQuery, top_k: int = 1) -> Routing:
        """Top-k experts per input (renormalised probabilities), zero rows where abstained."""
        label_scores = self.label_scores(self._checked_labels(query))
        scores = log_softmax(self._logits(self._checked_texts(query), label_scores))
        n, e = scores.shape
        if not 1 <= top_k <= e:
            raise ValueError(f"top_k must be in [1, {e}], got {top_k}")
        top = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]  # [N, k]
        chosen = np.take_along_axis(scores, top, axis=1)
        probs = np.exp(chosen - chosen.max(axis=1, keepdims=True))
        weights = np.zeros((n, e))
        np.put_along_axis(weights, top, probs / probs.sum(axis=1, keepdims=True), axis=1)
        abstained = self.abstain_rule.abstains(np.asarray(query.texts), self.config.abstain)
        if self._unknown_task(label_scores):
            abstained = np.ones(n, dtype=bool)
        weights[abstained] = 0.0
        return Routing(weights=weights, abstained=abstained, scores=scores)

    def _unknown_task(self, label_scores: np.ndarray | None) -> bool:
        """Candidate labels that no expert was trained on: the base model answers."""
        threshold = self.config.label_abstain
        return threshold is not None and label_scores is not None and label_scores.max() < threshold

    # state -----------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to route, as arrays."""
        self._require_fitted()
        tensors = {f"method.{k}": v for k, v in self._state().items()}
        tensors.update({f"abstain.{k}": v for k, v in self.abstain_rule.state().items()})
        tensors["labels.embeddings"] = self.label_bank
        tensors["labels.owner"] = self.label_owner
        return tensors

    def load_state(
        self, tensors: Mapping[str, np.ndarray], experts: Sequence[str] | None = None
    ) -> None:
        """Restore a state(); `experts` names the expert refs (default: keep the current)."""
        sub = {
            k: {n[len(k) + 1 :]: v for n, v in tensors.items() if n.startswith(k + ".")}
            for k in ("method", "abstain", "labels")
        }
        try:
            bank = np.asarray(sub["labels"]["embeddings"], np.float64)
            owner = np.asarray(sub["labels"]["owner"], np.int64)
        except KeyError as exc:
            raise ValueError(f"router state lacks tensor labels.{exc.args[0]}") from None
        self.abstain_rule.load_state(sub["abstain"])
        n_experts = self._load_state(sub["method"])
        refs = tuple(experts) if experts is not None else self.experts
        expected = self.abstain_rule.expected
        if len(refs) != n_experts or expected is None or len(expected) != n_experts:
            raise ValueError(f"router state is for {n_experts} experts, got {len(refs)} refs")
        _check_label_bank(bank, owner, n_experts, self.dim)
        self.experts, self.label_bank, self.label_owner = refs, bank, owner

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _load_state(self, tensors: Mapping[str, np.ndarray]) -> int:
        """Restore the method's arrays; returns the number of experts they route over."""

    # checks ----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """The embedding size d the router was fit for."""
        whiten = self.abstain_rule.whiten
        if whiten is None:
            raise RuntimeError(f"router {self.name!r} is not fitted (call fit or load_state)")
        return int(whiten.shape[0])

    def _require_fitted(self) -> None:
        if not self.experts or not self.abstain_rule.fitted:
            raise RuntimeError(f"router {self.name!r} is not fitted (call fit or load_state)")

    def _checked_texts(self, query: RoutingQuery) -> np.ndarray:
        self._require_fitted()
        texts = np.asarray(query.texts, np.float64)
        if texts.ndim != 2 or texts.shape[1] != self.dim:
            raise ValueError(f"query texts must have shape [N, {self.dim}], got {texts.shape}")
        if not np.isfinite(texts).all():
            raise ValueError("query texts hold NaN or infinite values")
        return texts

    def _checked_labels(self, query: RoutingQuery) -> np.ndarray | None:
        if query.labels is None:
            return None
        labels = np.asarray(query.labels, np.float64)
        if labels.ndim != 2 or labels.shape[1] != self.dim:
            raise ValueError(f"query labels must have shape [L, {self.dim}], got {labels.shape}")
        return labels


def _check_label_bank(bank: np.ndarray, owner: np.ndarray, n_experts: int, d: int) -> None:
    if owner.ndim != 1 or (len(owner) and bank.shape != (len(owner), d)):
        raise ValueError(f"label embeddings must have shape [{len(owner)}, {d}]")
    if len(owner) and (owner.min() < 0 or owner.max() >= n_experts or np.any(np.diff(owner) < 0)):
        raise ValueError("label owners must be ascending expert indices")


def _check_profiles(profiles: Sequence[ExpertProfile]) -> None:
    if not profiles:
        raise ValueError("a router needs at least one expert profile")
    d = profiles[0].moments.dim
    refs = [p.ref for p in profiles]
    if len(set(refs)) != len(refs):
        raise ValueError("expert refs must be unique")
    for p in profiles:
        if p.moments.dim != d:
            raise ValueError(f"{p.ref}: moments have d={p.moments.dim}, others {d}")
        labels = np.asarray(p.label_embeddings)
        if labels.size and (labels.ndim != 2 or labels.shape[1] != d):
            raise ValueError(f"{p.ref}: label embeddings must have shape [L, {d}]")


def synthetic_metrics(
    router: Router,
    profiles: Sequence[ExpertProfile],
    gaussians: ExpertGaussians | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Accuracy on fresh draws from each expert's Gaussian (projected to the sphere).

    synthetic_routing_accuracy: text only. label_routing_accuracy: each expert's own draws
    with its own label set as the query labels. label_conflict_accuracy: another expert's
    draws with this expert's label set, right when an owner of that label set is chosen.
    synthetic_abstain_rate: how often the abstain rule fires on the experts' own draws.
    """
    rng = np.random.default_rng([seed, 7919])
    n, e = EVAL_DRAWS_PER_EXPERT, len(profiles)
    gaussians = gaussians or ExpertGaussians.of([p.moments for p in profiles])
    draws = [gaussians.sample(i, n, rng) for i in range(e)]
    texts, truth = np.concatenate(draws), np.repeat(np.arange(e), n)
    predicted = router.log_probs(RoutingQuery(texts)).argmax(axis=1)
    metrics = {"synthetic_routing_accuracy": float(np.mean(predicted == truth))}
    if router.config.abstain is not None:
        abstained = router.abstain_rule.abstains(texts, router.config.abstain)
        metrics["synthetic_abstain_rate"] = float(abstained.mean())
    own, conflict = [], []
    for i, p in enumerate(profiles):
        if len(p.label_embeddings) == 0:
            continue
        labels = np.asarray(p.label_embeddings, np.float64)
        own.append(router.log_probs(RoutingQuery(draws[i], labels)).argmax(axis=1) == i)
        if e > 1:
            others = texts[truth != i][rng.choice((e - 1) * n, size=n, replace=False)]
            scores = router.label_scores(labels)
            assert scores is not None
            owners = np.flatnonzero(scores >= scores.max() - 1e-6)
            chosen = router.log_probs(RoutingQuery(others, labels)).argmax(axis=1)
            conflict.append(np.isin(chosen, owners))
    if own:
        metrics["label_routing_accuracy"] = float(np.mean(np.concatenate(own)))
    if conflict:
        metrics["label_conflict_accuracy"] = float(np.mean(np.concatenate(conflict)))
    return metrics
