"""The benchmark: one pool, one set of tasks, every system scored the same way.

Systems (`moerge bench --methods all` runs them all, in one process, with fixed seeds):
- baselines: `base` (zero-shot), `oracle` (each held-in task by its own expert) and
  `multitask` (one LoRA trained on every held-in task's data: needs the data pooled);
- per-input routers (centroid, gaussian, learned_gate, retrieval): `<method>` is queried
  with the text and the task's candidate labels, `<method>:text` with the text alone, each
  with the first combination; `<method>:text+<combination>` with the others;
- per-token routers (arrow, phatgoose), through the `token_mixture` combination;
- whole-pool merges: `merge_linear` (uniform average), `merge_task_arithmetic`, `merge_ties`;
- `lorahub`: merge weights searched per task on k examples per label (`--few-shot`).

Each system's result is kept in `out_dir/systems/` as soon as it is scored, so that an
interrupted run picks up where it stopped (with the same settings).
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moerge.combine import get as get_combination
from moerge.combine.merging import MergeConfig
from moerge.eval.experts import expert_task, prepare_experts, prepare_multitask
from moerge.eval.pools import PoolSpec
from moerge.eval.report import write_report
from moerge.eval.systems import Bench, EvalTask, SystemResult
from moerge.experts.runtime import ExpertSet
from moerge.routing import (
    ROUTERS,
    TASK_ROUTERS,
    TOKEN_ROUTERS,
    ExpertProfile,
    LoraHub,
    LoraHubConfig,
    Router,
    TokenRouter,
    TokenRouterConfig,
    create,
)
from moerge.stats.files import has_stats, read_moments, read_stats
from moerge.tasks import load_task

Log = Callable[[str], None]

DEFAULT_METHODS = ("centroid", "gaussian", "learned_gate")
# systems that are not routing methods, selectable by name in --methods
BASELINES = ("multitask",)
MERGES = {
    "merge_linear": MergeConfig("linear"),
    "merge_task_arithmetic": MergeConfig("task_arithmetic", scale=0.3),
    "merge_ties": MergeConfig("ties", scale=1.0, density=0.2),
}
INPUT_COMBINATIONS = ("top1", "output_ensemble", "parameter_merge")


def eval_tasks(pool: PoolSpec, data_dir: Path | None) -> list[EvalTask]:
    tasks = []
    for i, expert in enumerate(pool.experts):
        task = expert_task(pool, expert, data_dir)
        tasks.append(_eval_task(task, True, i))
    for name in pool.heldout:
        tasks.append(_eval_task(load_task(name, data_dir, split=pool.split), False, None))
    return tasks


def _eval_task(task: Any, heldin: bool, expert: int | None) -> EvalTask:
    index = {label.name: j for j, label in enumerate(task.labels)}
    return EvalTask(
        name=task.name,
        heldin=heldin,
        expert=expert,
        labels=tuple(task.labels),
        texts=[e.text for e in task.test],
        truth=np.array([index[e.label] for e in task.test], dtype=np.int64),
        train_texts=[e.text for e in task.train],
        train_truth=np.array([index[e.label] for e in task.train], dtype=np.int64),
    )


def known_methods() -> list[str]:
    return [*ROUTERS, *TOKEN_ROUTERS, *TASK_ROUTERS, *BASELINES, *MERGES]


def parse_methods(text: str) -> list[str]:
    """Method and system names from a comma-separated list, or every one of them ("all")."""
    known = known_methods()
    methods = known if text.strip() == "all" else [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        raise ValueError(f"unknown methods {unknown} (known: {', '.join(sorted(known))}, or all)")
    return list(dict.fromkeys(methods))


def parse_combinations(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in names if c not in INPUT_COMBINATIONS]
    if bad or not names:
        raise ValueError(
            f"unknown combinations {bad} for per-input routers "
            f"(known: {', '.join(INPUT_COMBINATIONS)}; token_mixture is used by arrow and phatgoose)"
        )
    return list(dict.fromkeys(names))


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


def fit_token_routers(
    methods: Sequence[str], refs: Sequence[str], dirs: Sequence[Path], top_k: int
) -> dict[str, tuple[TokenRouter, dict[str, Any]]]:
    routers = {}
    for method in methods:
        cls = TOKEN_ROUTERS[method]
        router = cls(TokenRouterConfig(top_k=top_k))
        vectors = [read_stats(d, cls.stats_kind)[0] for d in dirs]
        routers[method] = (router, router.fit(refs, vectors))
    return routers


@dataclass(frozen=True)
class _Plan:
    name: str
    key: dict[str, Any]
    score: Callable[[], SystemResult]


def run(
    pool: PoolSpec,
    *,
    methods: Sequence[str],
    out_dir: Path,
    cache_dir: Path,
    data_dir: Path | None = None,
    base_dir: Path | None = None,
    combinations: Sequence[str] = ("top1",),
    top_k: int = 2,
    few_shot: int = 5,
    fresh: bool = False,
    progress: bool = True,
    log: Log | None = None,
) -> dict[str, Any]:
    """Train or reuse the pool's experts, fit the methods, score every system, write files."""
    from moerge.models import default_base_model_path, fingerprint

    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    started = time.perf_counter()
    combinations = parse_combinations(",".join(combinations))
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
    if "multitask" in methods:
        locations["multitask"] = prepare_multitask(
            pool,
            cache_dir=cache_dir,
            base_dir=base_dir,
            base_fingerprint=base_print,
            data_dir=data_dir,
            progress=progress,
            log=say,
        )
    experts = ExpertSet(base_dir, locations.__getitem__, capacity=len(locations))
    tasks = eval_tasks(pool, data_dir)
    bench = Bench(experts, refs, tasks)
    dirs = [locations[r] for r in refs]
    profiles = [
        ExpertProfile(
            ref=ref,
            moments=read_moments(locations[ref]),
            label_embeddings=bench.query(task)[1],
            examples=_examples(locations[ref]),
        )
        for ref, task in zip(refs, tasks, strict=False)
    ]
    input_methods = [m for m in methods if m in ROUTERS]
    token_methods = [m for m in methods if m in TOKEN_ROUTERS]
    routers = fit_routers(input_methods, profiles, pool.training.seed, say)
    token_routers = fit_token_routers(token_methods, refs, dirs, top_k)
    experts_digest = {r: str(locations[r]) for r in locations}
    common = {"pool": pool.name, "experts": experts_digest, "seed": pool.training.seed}

    plans = [_Plan("base", common, bench.base), _Plan("oracle", common, bench.oracle)]
    if "multitask" in methods:
        plans.append(_Plan("multitask", common, lambda: bench.single("multitask", "multitask")))
    for method, (router, _) in routers.items():
        first, *others = combinations
        variants = [(method, True, first), (f"{method}:text", False, first)]
        variants += [(f"{method}:text+{c}", False, c) for c in others]
        for name, use_labels, comb in variants:
            plans.append(
                _Plan(
                    name,
                    {**common, "combination": comb, "top_k": top_k},
                    _routed(bench, name, router, use_labels, comb, top_k),
                )
            )
    for method, (token_router, _) in token_routers.items():
        plans.append(_Plan(method, {**common, "top_k": top_k}, _token(bench, method, token_router)))
    for name, config in MERGES.items():
        if name in methods:
            plans.append(_Plan(name, {**common, **asdict(config)}, _merged(bench, name, config)))
    hub_config = LoraHubConfig(shots=few_shot, seed=pool.training.seed)
    if "lorahub" in methods:
        hub = LoraHub(hub_config)
        plans.append(
            _Plan(
                "lorahub",
                {**common, **asdict(hub_config)},
                lambda: bench.lorahub("lorahub", hub, say, progress),
            )
        )

    store = Path(out_dir) / "systems"
    if fresh:
        shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True, exist_ok=True)
    summaries: dict[str, dict[str, Any]] = {}
    for i, plan in enumerate(plans, start=1):
        key = hashlib.sha256(json.dumps(plan.key, sort_keys=True).encode()).hexdigest()[:16]
        saved = store / f"{plan.name.replace(':', '_').replace('+', '__')}.json"
        if saved.is_file():
            data = json.loads(saved.read_text())
            if data.get("key") == key:
                say(f"[{i}/{len(plans)}] {plan.name}: already scored (resumed)")
                summaries[plan.name] = data["summary"]
                continue
        say(f"[{i}/{len(plans)}] scoring {plan.name}")
        result = plan.score()
        summary = result.summary(tasks)
        saved.write_text(json.dumps({"key": key, "summary": summary}, default=float) + "\n")
        summaries[plan.name] = summary
        say(
            f"[{i}/{len(plans)}] {plan.name}: held-in {_fmt(summary['heldin_mean'])}, "
            f"held-out {_fmt(summary['heldout_mean'])} ({summary['ms_per_1000'] or 0:.0f} ms / 1000 inputs)"
        )
    fits = {m: metrics for m, (_, metrics) in routers.items()}
    fits.update({m: metrics for m, (_, metrics) in token_routers.items()})
    report = _report(pool, tasks, summaries, fits, paths, base_print, combinations, top_k)
    report["seeds"] = {
        "training": pool.training.seed,
        "split": pool.split.seed,
        "gates": pool.gates.seed,
        "router_fit": pool.training.seed,
        "lorahub": hub_config.seed,
        "examples": pool.training.seed,
    }
    report["lorahub"] = asdict(hub_config) if "lorahub" in methods else None
    report["merges"] = {n: asdict(c) for n, c in MERGES.items() if n in methods}
    report["seconds"] = time.perf_counter() - started
    write_report(out_dir, report, pool_file=pool.path)
    return report


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _examples(expert_dir: Path) -> np.ndarray | None:
    if not has_stats(expert_dir, "examples"):
        return None
    return read_stats(expert_dir, "examples")[0]["embeddings"]


def _routed(
    bench: Bench, name: str, router: Router, use_labels: bool, combination: str, top_k: int
) -> Callable[[], SystemResult]:
    return lambda: bench.routed(
        name, router, use_labels=use_labels, combination=get_combination(combination)(), top_k=top_k
    )


def _token(bench: Bench, name: str, router: TokenRouter) -> Callable[[], SystemResult]:
    return lambda: bench.token(name, router)


def _merged(bench: Bench, name: str, config: MergeConfig) -> Callable[[], SystemResult]:
    return lambda: bench.merged(name, config)


def _report(
    pool: PoolSpec,
    tasks: Sequence[EvalTask],
    summaries: dict[str, dict[str, Any]],
    fits: dict[str, dict[str, Any]],
    paths: dict[str, Path],
    base_print: str,
    combinations: Sequence[str],
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
        "combinations": list(combinations),
        "top_k": top_k,
        "experts_order": [e.name for e in pool.experts],
        "versions": {
            "moerge": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cma": _version("cma"),
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
        "routers": fits,
        "systems": summaries,
    }


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
