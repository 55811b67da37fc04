"""Training (or reusing) the experts of a pool, each with its routing statistics.

An expert is cached under `cache_dir/<name>-<key>/`, where the key digests the
pool entry, the split, the training settings and the base model's fingerprint:
change any of them and the expert is trained again; change none and a later
run (or a contributor that trained it into that place) is reused as is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from moerge.eval.pools import ExpertSpec, PoolSpec
from moerge.experts.manifest import ADAPTER_WEIGHTS, read_expert_metadata
from moerge.stats.files import has_stats, stats_meta, stats_paths
from moerge.stats.moments import KIND
from moerge.tasks import TaskData, load_task

Log = Callable[[str], None]


def default_cache_dir() -> Path:
    return Path(os.environ.get("MOERGE_CACHE_DIR", Path.home() / ".cache" / "moerge" / "experts"))


def expert_dir(pool: PoolSpec, expert: ExpertSpec, cache_dir: Path, base_fingerprint: str) -> Path:
    return Path(cache_dir) / f"{expert.name}-{pool.expert_key(expert, base_fingerprint)}"


def is_complete(path: Path) -> bool:
    """A finished expert: adapter, metadata and routing statistics all present."""
    return (
        (path / ADAPTER_WEIGHTS).is_file()
        and bool(read_expert_metadata(path))
        and stats_paths(path, KIND)[0].is_file()
    )


def expert_task(pool: PoolSpec, expert: ExpertSpec, data_dir: Path | None) -> TaskData:
    task = load_task(
        expert.task, data_dir, split=pool.expert_split(expert), labels=expert.labels or None
    )
    description = expert.description or task.description
    return replace(task, name=expert.task_name, description=description)


def train_pool_expert(
    pool: PoolSpec,
    expert: ExpertSpec,
    out_dir: Path,
    *,
    base_dir: Path,
    data_dir: Path | None,
    progress: bool = True,
    log: Log | None = None,
    noise_multiplier: float = 0.0,
) -> Path:
    """Train one expert of the pool into out_dir and compute its routing statistics."""
    from moerge.experts.training import build_expert

    task = expert_task(pool, expert, data_dir)
    result, _ = build_expert(
        base_dir,
        task,
        out_dir,
        name=expert.name,
        base_name=pool.base_model,
        config=pool.training,
        noise_multiplier=noise_multiplier,
        gates=pool.gates,
        examples=pool.stats.examples,
        progress=progress,
        log=log,
    )
    (log or _stderr)(
        f"{expert.name}: validation accuracy {result.validation_accuracy:.3f} "
        f"(base {result.base_validation_accuracy:.3f}) in {result.seconds:.0f} s"
    )
    return out_dir


def prepare_experts(
    pool: PoolSpec,
    *,
    cache_dir: Path,
    base_dir: Path,
    base_fingerprint: str,
    data_dir: Path | None,
    progress: bool = True,
    log: Log | None = None,
) -> dict[str, Path]:
    """Every expert of the pool, trained now where no cached copy exists."""
    say = log or _stderr
    found: dict[str, Path] = {}
    for i, expert in enumerate(pool.experts, start=1):
        path = expert_dir(pool, expert, cache_dir, base_fingerprint)
        if is_complete(path):
            say(f"[{i}/{len(pool.experts)}] {expert.name}: cached at {path}")
        else:
            say(f"[{i}/{len(pool.experts)}] {expert.name}: training on {expert.task_name}")
            path.parent.mkdir(parents=True, exist_ok=True)
            train_pool_expert(
                pool,
                expert,
                path,
                base_dir=base_dir,
                data_dir=data_dir,
                progress=progress,
                log=say,
            )
        complete_stats(pool, expert, path, base_dir=base_dir, data_dir=data_dir, log=say)
        found[expert.name] = path
    return found


def complete_stats(
    pool: PoolSpec,
    expert: ExpertSpec,
    path: Path,
    *,
    base_dir: Path,
    data_dir: Path | None,
    log: Log | None = None,
) -> None:
    """Compute the statistics a cached expert lacks (arrow, PHATGOOSE gates, examples)."""
    from moerge.experts.encoder import Encoder
    from moerge.stats.arrow import KIND as ARROW
    from moerge.stats.arrow import write_arrow
    from moerge.stats.examples import KIND as EXAMPLES
    from moerge.stats.examples import write_examples
    from moerge.stats.phatgoose import KIND as GATES
    from moerge.stats.phatgoose import train_gates, write_gates

    say = log or _stderr
    if not has_stats(path, ARROW):
        write_arrow(path)
    if not has_stats(path, GATES):
        say(f"{expert.name}: training PHATGOOSE gates ({pool.gates.steps} steps)")
        task = expert_task(pool, expert, data_dir)
        write_gates(path, train_gates(base_dir, path, task, pool.gates), pool.gates)
    meta = stats_meta(path, EXAMPLES)
    if pool.stats.examples and (meta or {}).get("requested") != pool.stats.examples:
        texts = [e.text for e in expert_task(pool, expert, data_dir).train]
        encoder = Encoder.from_dir(base_dir)
        write_examples(path, encoder, texts, pool.stats.examples, seed=pool.training.seed)


def multitask_dir(pool: PoolSpec, cache_dir: Path, base_fingerprint: str) -> Path:
    return Path(cache_dir) / f"multitask-{pool.name}-{pool.multitask_key(base_fingerprint)}"


def prepare_multitask(
    pool: PoolSpec,
    *,
    cache_dir: Path,
    base_dir: Path,
    base_fingerprint: str,
    data_dir: Path | None,
    progress: bool = True,
    log: Log | None = None,
) -> Path:
    """The multitask baseline: one LoRA trained on every held-in task's training data.

    It needs all contributors' data in one place, which MoErging never does: it is the
    privileged reference, trained with the pool's own settings.
    """
    from moerge.experts.training import build_expert

    say = log or _stderr
    path = multitask_dir(pool, cache_dir, base_fingerprint)
    if (path / ADAPTER_WEIGHTS).is_file() and read_expert_metadata(path):
        say(f"multitask: cached at {path}")
        return path
    tasks = [expert_task(pool, e, data_dir) for e in pool.experts]
    say(f"multitask: training one expert on all {len(tasks)} held-in tasks")
    path.parent.mkdir(parents=True, exist_ok=True)
    result, _ = build_expert(
        base_dir,
        tasks,
        path,
        name="multitask",
        base_name=pool.base_model,
        config=pool.training,
        stats=False,
        progress=progress,
        log=say,
    )
    say(
        f"multitask: validation accuracy {result.validation_accuracy:.3f} in {result.seconds:.0f} s"
    )
    return path


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
