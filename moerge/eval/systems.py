"""Scoring systems on a pool's tasks: every system is measured the same way.

A system answers every test input of every task; its result holds the accuracy per
task and, per input, what the routing did: whether it chose the input's own expert
(held-in), whether it abstained, the router's entropy over experts, and how many
experts touched the input. Time is the system's whole answer (routing and experts),
measured in the same run; input-level routers are charged the base model's pass that
embeds their queries, measured once per task.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moerge.combine.base import Combination, Prediction, mix_outputs
from moerge.combine.merging import MergeConfig
from moerge.combine.merging import lorahub as lorahub_merge
from moerge.combine.parameter_merge import ParameterMerge
from moerge.combine.token_mixture import TokenMixture
from moerge.experts.encoder import label_probs
from moerge.experts.manifest import Label
from moerge.experts.runtime import ExpertSet
from moerge.routing import LoraHub, Router, RoutingQuery, TokenRouter
from moerge.routing.lorahub import few_shot

Log = Callable[[str], None]


@dataclass(frozen=True)
class EvalTask:
    name: str
    heldin: bool
    expert: int | None  # index of the task's own expert (held-in only)
    labels: tuple[Label, ...]
    texts: list[str]
    truth: np.ndarray  # [N] label indices
    train_texts: list[str] = field(default_factory=list)  # for few-shot methods
    train_truth: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def descriptions(self) -> list[str]:
        return [x.text for x in self.labels]


@dataclass
class SystemResult:
    name: str
    kind: str  # baseline, router, token, merge, lorahub
    per_task: dict[str, float] = field(default_factory=dict)
    routed_to_own: list[float] = field(default_factory=list)  # held-in inputs
    abstained: list[float] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)  # nats, per input
    active: list[float] = field(default_factory=list)  # experts touching each input
    assignments: dict[str, list[float]] = field(default_factory=dict)  # task -> share per expert
    seconds: float = 0.0  # the whole answer
    routing_seconds: float = 0.0  # the router's own decisions, on embedded queries
    inputs: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self, tasks: Sequence[EvalTask]) -> dict[str, Any]:
        heldin = [self.per_task[t.name] for t in tasks if t.heldin and t.name in self.per_task]
        heldout = [self.per_task[t.name] for t in tasks if not t.heldin and t.name in self.per_task]

        def per_1000(seconds: float) -> float | None:
            return 1e6 * seconds / self.inputs if self.inputs and seconds else None

        return {
            "kind": self.kind,
            "heldin_mean": _mean(heldin),
            "heldout_mean": _mean(heldout),
            "routing_accuracy": _mean(self.routed_to_own),
            "abstain_rate": _mean(self.abstained),
            "routing_entropy": _mean(self.entropy),
            "experts_active": _mean(self.active),
            "ms_per_1000": per_1000(self.seconds),
            "routing_ms_per_1000": per_1000(self.routing_seconds),
            "per_task": self.per_task,
            "assignments": self.assignments,
            **({"extra": self.extra} if self.extra else {}),
        }


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _entropy(log_probs: np.ndarray) -> np.ndarray:
    p = np.exp(log_probs)
    return -(p * np.where(p > 0, log_probs, 0.0)).sum(axis=1)


class Bench:
    """Scores systems on a pool's tasks with one ExpertSet (no output caching)."""

    def __init__(self, experts: ExpertSet, refs: Sequence[str], tasks: Sequence[EvalTask]) -> None:
        self.experts = experts
        self.refs = list(refs)
        self.tasks = list(tasks)
        self._queries: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}

    def query(self, task: EvalTask) -> tuple[np.ndarray, np.ndarray, float]:
        """Base-model embeddings of the task's texts and labels, and what they cost."""
        if task.name not in self._queries:
            started = time.perf_counter()
            texts = self.experts.embed(task.texts, None)
            labels = self.experts.embed(task.descriptions, None)
            self._queries[task.name] = (texts, labels, time.perf_counter() - started)
        return self._queries[task.name]

    def _record(
        self,
        result: SystemResult,
        task: EvalTask,
        prediction: Prediction,
        *,
        weights: np.ndarray | None = None,
        abstained: np.ndarray | None = None,
        entropy: np.ndarray | None = None,
        active: np.ndarray | None = None,
    ) -> None:
        n = len(task.texts)
        result.per_task[task.name] = float((prediction.labels == task.truth).mean())
        result.inputs += n
        if active is None:
            active = np.array([len(used) for used in prediction.experts], dtype=float)
        result.active.extend(np.asarray(active, float).tolist())
        if entropy is not None:
            result.entropy.extend(np.asarray(entropy, float).tolist())
        if weights is None:
            return
        abstained = np.zeros(n, bool) if abstained is None else np.asarray(abstained, bool)
        result.abstained.extend(abstained.astype(float).tolist())
        best = np.where(abstained | (weights.max(axis=1) <= 0), -1, weights.argmax(axis=1))
        if task.heldin and task.expert is not None:
            result.routed_to_own.extend((best == task.expert).astype(float).tolist())
        shares = np.bincount(np.where(best < 0, len(self.refs), best), minlength=len(self.refs) + 1)
        result.assignments[task.name] = (shares / n).tolist()

    # baselines -------------------------------------------------------------------------
    def base(self) -> SystemResult:
        result = SystemResult("base", "baseline")
        for task in self.tasks:
            started = time.perf_counter()
            n = len(task.texts)
            prediction = mix_outputs(
                self.experts,
                self.refs,
                np.zeros((n, len(self.refs))),
                np.ones(n, bool),
                task.texts,
                task.descriptions,
            )
            result.seconds += time.perf_counter() - started
            self._record(result, task, prediction)
        return result

    def oracle(self) -> SystemResult:
        result = SystemResult("oracle", "baseline")
        for task in self.tasks:
            if not task.heldin or task.expert is None:
                continue
            started = time.perf_counter()
            weights = np.zeros((len(task.texts), len(self.refs)))
            weights[:, task.expert] = 1.0
            abstained = np.zeros(len(task.texts), bool)
            prediction = mix_outputs(
                self.experts, self.refs, weights, abstained, task.texts, task.descriptions
            )
            result.seconds += time.perf_counter() - started
            self._record(result, task, prediction, weights=weights, abstained=abstained)
        return result

    def single(self, name: str, ref: str) -> SystemResult:
        """One expert outside the pool answers everything (the multitask baseline)."""
        result = SystemResult(name, "baseline")
        for task in self.tasks:
            started = time.perf_counter()
            text_emb = self.experts.embed(task.texts, ref)
            probs = label_probs(text_emb, self.experts.embed(task.descriptions, ref))
            result.seconds += time.perf_counter() - started
            prediction = Prediction(probs, [[(ref, 1.0)] for _ in task.texts])
            self._record(result, task, prediction)
        return result

    # MoErging systems ------------------------------------------------------------------
    def routed(
        self, name: str, router: Router, *, use_labels: bool, combination: Combination, top_k: int
    ) -> SystemResult:
        result = SystemResult(name, "router")
        k = min(combination.top_k(top_k), len(self.refs))
        for task in self.tasks:
            texts, labels, embed_seconds = self.query(task)
            started = time.perf_counter()
            routing = router.route(RoutingQuery(texts, labels if use_labels else None), top_k=k)
            routed = time.perf_counter()
            abstained = np.asarray(routing.abstained)
            prediction = combination.predict(
                self.experts, self.refs, routing.weights, abstained, task.texts, task.descriptions
            )
            done = time.perf_counter()
            result.routing_seconds += routed - started
            result.seconds += embed_seconds + done - started
            self._record(
                result,
                task,
                prediction,
                weights=combination.select(routing.weights),
                abstained=abstained,
                entropy=_entropy(routing.scores),
            )
        return result

    def token(self, name: str, router: TokenRouter) -> SystemResult:
        result = SystemResult(name, "token")
        mixture = TokenMixture()
        for task in self.tasks:
            started = time.perf_counter()
            prediction, record = mixture.predict(
                self.experts, router, task.texts, task.descriptions
            )
            result.seconds += time.perf_counter() - started
            self._record(
                result,
                task,
                prediction,
                weights=record.mean_weights,
                entropy=record.entropy,
                active=record.active,
            )
        return result

    def merged(self, name: str, config: MergeConfig) -> SystemResult:
        """Every expert merged into one with equal weights; the merge answers everything."""
        result = SystemResult(name, "merge")
        combination = ParameterMerge(config)
        for task in self.tasks:
            n = len(task.texts)
            weights = np.full((n, len(self.refs)), 1.0 / len(self.refs))
            started = time.perf_counter()
            prediction = combination.predict(
                self.experts, self.refs, weights, np.zeros(n, bool), task.texts, task.descriptions
            )
            result.seconds += time.perf_counter() - started
            self._record(result, task, prediction)
        return result

    def lorahub(self, name: str, hub: LoraHub, log: Log, progress: bool = False) -> SystemResult:
        """Per task: search merge weights on k examples per label, then answer with the merge."""
        import torch

        result = SystemResult(name, "lorahub")
        searches: dict[str, Any] = {}
        for task in self.tasks:
            shots = few_shot(task.train_truth, hub.config.shots, hub.config.seed)
            if len(shots) == 0:
                raise ValueError(f"{task.name}: no training examples for LoraHub's few-shot search")
            started = time.perf_counter()
            with self.experts.mixing(self.refs) as (mixture, stack):
                found = hub.fit_task(
                    mixture,
                    stack,
                    [task.train_texts[i] for i in shots],
                    task.train_truth[shots],
                    task.descriptions,
                    progress=progress,
                )
                searched = time.perf_counter()
                with mixture.merged(lorahub_merge(stack, torch.from_numpy(found.weights).float())):
                    text_emb = mixture.embed(task.texts)
                    label_emb = mixture.embed(task.descriptions)
            result.seconds += time.perf_counter() - searched
            used = [(r, float(w)) for r, w in zip(self.refs, found.weights, strict=True) if w != 0]
            prediction = Prediction(label_probs(text_emb, label_emb), [used] * len(task.texts))
            self._record(result, task, prediction)
            searches[task.name] = {
                "weights": dict(zip(self.refs, found.weights.round(4).tolist(), strict=True)),
                "shots": int(len(shots)),
                "objective": found.objective,
                "uniform_objective": found.uniform_objective,
                "zero_objective": found.zero_objective,
                "evaluations": found.evaluations,
                "search_seconds": searched - started,
            }
            log(
                f"  lorahub {task.name}: {len(shots)} shots, objective {found.objective:.3f} "
                f"(uniform {found.uniform_objective:.3f}, base {found.zero_objective:.3f}), "
                f"accuracy {result.per_task[task.name]:.3f}"
            )
        result.extra = {"config": hub.config.__dict__, "tasks": searches}
        return result
