"""The benchmark: one pool, one set of tasks, every system scored the same way.

Systems:
- `base`: the base model alone, zero-shot, in the label-description scoring space;
- `oracle`: each held-in task answered by its own expert (not defined held-out);
- `<method>`: routed by a router fit from the experts' statistics, queried with the
  text and the task's candidate labels; `<method>:text`: queried with the text alone.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moerge.combine import get as get_combination
from moerge.eval.experts import expert_task, prepare_experts
from moerge.eval.pools import PoolSpec
from moerge.eval.report import write_report
from moerge.experts.manifest import Label
from moerge.experts.runtime import ExpertSet
from moerge.routing import ROUTERS, ExpertProfile, Router, RoutingQuery, create
from moerge.stats.files import read_moments
from moerge.tasks import load_task

Log = Callable[[str], None]


@dataclass(frozen=True)
class EvalTask:
    name: str
    heldin: bool
    expert: int | None  # index of the task's own expert (held-in only)
    labels: tuple[Label, ...]
    texts: list[str]
    truth: np.ndarray  # [N] label indices


@dataclass
class SystemResult:
    name: str
    per_task: dict[str, float] = field(default_factory=dict)
    routed_to_own: list[float] = field(default_factory=list)  # held-in rows
    abstained: list[float] = field(default_factory=list)
    routing_seconds: float = 0.0  # the router's own decisions, on embedded queries
    routed_inputs: int = 0

    def summary(self, tasks: Sequence[EvalTask]) -> dict[str, Any]:
        heldin = [self.per_task[t.name] for t in tasks if t.heldin and t.name in self.per_task]
        heldout = [self.per_task[t.name] for t in tasks if not t.heldin and t.name in self.per_task]
        return {
            "heldin_mean": _mean(heldin),
            "heldout_mean": _mean(heldout),
            "routing_accuracy": _mean(self.routed_to_own),
            "abstain_rate": _mean(self.abstained),
            "per_task": self.per_task,
            "routing_ms_per_1000": (
                1e6 * self.routing_seconds / self.routed_inputs if self.routed_inputs else None
            ),
        }


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def eval_tasks(pool: PoolSpec, data_dir: Path | None) -> list[EvalTask]:
    tasks = []
    for i, expert in enumerate(pool.experts):
        task = expert_task(pool, expert, data_dir)
        tasks.append(_eval_task(task.name, True, i, task.labels, task.test))
    for name in pool.heldout:
        task = load_task(name, data_dir, split=pool.split)
        tasks.append(_eval_task(task.name, False, None, task.labels, task.test))
    return tasks


def _eval_task(name: str, heldin: bool, expert: int | None, labels: Any, test: Any) -> EvalTask:
    index = {label.name: j for j, label in enumerate(labels)}
    truth = np.array([index[e.label] for e in test], dtype=np.int64)
    return EvalTask(name, heldin, expert, tuple(labels), [e.text for e in test], truth)


def _descriptions(task: EvalTask) -> list[str]:
    return [x.text for x in task.labels]


class Bench:
    """Scores systems on a pool's tasks; expert outputs are computed once and shared."""

    def __init__(self, experts: ExpertSet, refs: Sequence[str], tasks: Sequence[EvalTask]) -> None:
        self.experts = experts
        self.refs = list(refs)
        self.tasks = list(tasks)

    def _score(
        self,
        result: SystemResult,
        task: EvalTask,
        weights: np.ndarray,
        abstained: np.ndarray,
        combination: str,
    ) -> None:
        combine = get_combination(combination)()
        prediction = combine.predict(
            self.experts, self.refs, weights, abstained, task.texts, _descriptions(task)
        )
        result.per_task[task.name] = float((prediction.labels == task.truth).mean())
        result.abstained.extend(abstained.astype(float).tolist())
        if task.heldin and task.expert is not None:
            best = np.where(abstained, -1, weights.argmax(axis=1))
            result.routed_to_own.extend((best == task.expert).astype(float).tolist())

    def base(self) -> SystemResult:
        result = SystemResult("base")
        for task in self.tasks:
            n = len(task.texts)
            self._score(result, task, np.zeros((n, len(self.refs))), np.ones(n, bool), "top1")
        result.abstained, result.routed_to_own = [], []  # no router: neither is defined
        return result

    def oracle(self) -> SystemResult:
        result = SystemResult("oracle")
        for task in self.tasks:
            if not task.heldin or task.expert is None:
                continue
            weights = np.zeros((len(task.texts), len(self.refs)))
            weights[:, task.expert] = 1.0
            self._score(result, task, weights, np.zeros(len(task.texts), bool), "top1")
        return result

    def routed(
        self, name: str, router: Router, *, use_labels: bool, combination: str, top_k: int
    ) -> SystemResult:
        result = SystemResult(name)
        k = min(get_combination(combination)().top_k(top_k), len(self.refs))
        for task in self.tasks:
            texts = self.experts.embed(task.texts, None)
            labels = self.experts.embed(_descriptions(task), None) if use_labels else None
            started = time.perf_counter()
            routing = router.route(RoutingQuery(texts=texts, labels=labels), top_k=k)
            result.routing_seconds += time.perf_counter() - started
            result.routed_inputs += len(task.texts)
            self._score(result, task, routing.weights, np.asarray(routing.abstained), combination)
        return result


def fit_routers(
    methods: Sequence[str], profiles: Sequence[ExpertProfile], seed: int, log: Log
) -> dict[str, tuple[Router, dict[str, Any]]]:
    routers = {}
    for method in methods:
        started = time.perf_counter()
        router = create(method)
        metrics = dict(router.fit(profiles, seed=seed))
        metrics["fit_seconds"] = time.perf_counter() - started
        log(f"router {method}: fit in {metrics['fit_seconds']:.1f} s")
        routers[method] = (router, metrics)
    return routers


def parse_methods(text: str) -> list[str]:
    methods = list(ROUTERS) if text.strip() == "all" else [m.strip() for m in text.split(",")]
    unknown = [m for m in methods if m not in ROUTERS]
    if unknown or not methods:
        known = ", ".join(sorted(ROUTERS))
        raise ValueError(f"unknown routing methods {unknown} (known: {known}, or all)")
    return methods


def run(
    pool: PoolSpec,
    *,
    methods: Sequence[str],
    out_dir: Path,
    cache_dir: Path,
    data_dir: Path | None = None,
    base_dir: Path | None = None,
    combination: str = "top1",
    top_k: int = 2,
    progress: bool = True,
    log: Log | None = None,
) -> dict[str, Any]:
    """Train or reuse the pool's experts, fit the routers, score every system, write files."""
    from moerge.models import default_base_model_path, fingerprint

    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    started = time.perf_counter()
    base_dir = Path(base_dir or default_base_model_path())
    base_print = fingerprint(base_dir)
    paths = prepare_experts(
        pool,
        cache_dir=cache_dir,
        base_dir=base_dir,
        base_fingerprint=base_print,
        data_dir=data_dir,
        progress=progress,
        log=say,
    )
    refs = [f"{e.name}:1" for e in pool.experts]
    locations = dict(zip(refs, (paths[e.name] for e in pool.experts), strict=True))
    experts = ExpertSet(base_dir, locations.__getitem__, capacity=4, cache_embeddings=True)
    tasks = eval_tasks(pool, data_dir)
    profiles = [
        ExpertProfile(
            ref=ref,
            moments=read_moments(locations[ref]),
            label_embeddings=experts.embed(_descriptions(task), None),
        )
        for ref, task in zip(refs, tasks, strict=False)
    ]
    routers = fit_routers(methods, profiles, pool.training.seed, say)
    bench = Bench(experts, refs, tasks)
    results: list[SystemResult] = []
    for label, make in (("base", bench.base), ("oracle", bench.oracle)):
        say(f"scoring {label}")
        results.append(make())
    for method, (router, _) in routers.items():
        for suffix, use_labels in (("", True), (":text", False)):
            say(f"scoring {method}{suffix}")
            results.append(
                bench.routed(
                    method + suffix,
                    router,
                    use_labels=use_labels,
                    combination=combination,
                    top_k=top_k,
                )
            )
    report = _report(pool, tasks, results, routers, paths, base_print, combination, top_k)
    report["seconds"] = time.perf_counter() - started
    write_report(out_dir, report)
    return report


def _report(
    pool: PoolSpec,
    tasks: Sequence[EvalTask],
    results: Sequence[SystemResult],
    routers: dict[str, tuple[Router, dict[str, Any]]],
    paths: dict[str, Path],
    base_print: str,
    combination: str,
    top_k: int,
) -> dict[str, Any]:
    import peft
    import torch
    import transformers

    from moerge import __version__
    from moerge.experts.manifest import read_expert_metadata

    return {
        "pool": pool.name,
        "pool_file": str(pool.path) if pool.path else None,
        "base_model": {"name": pool.base_model, "fingerprint": base_print},
        "seed": pool.training.seed,
        "split": pool.split.__dict__,
        "combination": combination,
        "top_k": top_k,
        "versions": {
            "moerge": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "python": platform.python_version(),
        },
        "tasks": {
            t.name: {
                "heldin": t.heldin,
                "expert": pool.experts[t.expert].name if t.expert is not None else None,
                "labels": len(t.labels),
                "test_size": len(t.texts),
            }
            for t in tasks
        },
        "experts": {
            name: {"path": str(path), **read_expert_metadata(path).get("training", {})}
            for name, path in paths.items()
        },
        "routers": {m: metrics for m, (_, metrics) in routers.items()},
        "systems": {r.name: r.summary(tasks) for r in results},
    }
