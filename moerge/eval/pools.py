"""Pool files: which experts a community trains, on which data, and which tasks stay held out.

A pool file is TOML (see experiments/pools/default.toml):

    name = "default"
    base_model = "all-MiniLM-L6-v2"
    [split]      per-class caps: train, validation, test, seed
    [training]   TrainConfig fields (epochs, learning_rate, rank, ...)
    [stats]      examples: embedded training inputs per expert (0: none)
    [gates]      GateConfig fields of the PHATGOOSE gate training (steps, learning_rate, ...)
    [[experts]]  name, contributor, task, labels (a subset of the task's labels), optional
                 description and train (per-class cap overriding [split].train)
    [[heldout]]  task: a task no expert was trained on
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from moerge.experts.training import TrainConfig
from moerge.stats.phatgoose import GateConfig
from moerge.tasks.core import Split

# experiments/pools in a source checkout; MOERGE_POOLS_DIR elsewhere (the Docker image sets it)
POOLS_DIR = Path(
    os.environ.get(
        "MOERGE_POOLS_DIR", Path(__file__).resolve().parents[2] / "experiments" / "pools"
    )
)


class PoolError(Exception):
    """A pool file that cannot be read or does not make sense."""


@dataclass(frozen=True)
class ExpertSpec:
    name: str
    contributor: str
    task: str
    labels: tuple[str, ...] = ()
    description: str = ""
    train: int | None = None

    @property
    def task_name(self) -> str:
        """The held-in task this expert answers: its task restricted to its labels."""
        return f"{self.task}[{self.name}]" if self.labels else self.task


@dataclass(frozen=True)
class StatsSpec:
    examples: int = 32

    def __post_init__(self) -> None:
        if not 0 <= self.examples <= 256:
            raise ValueError(f"examples must be in 0..256, got {self.examples}")


@dataclass(frozen=True)
class PoolSpec:
    name: str
    base_model: str
    experts: tuple[ExpertSpec, ...]
    heldout: tuple[str, ...]
    split: Split = field(default_factory=Split)
    training: TrainConfig = field(default_factory=TrainConfig)
    stats: StatsSpec = field(default_factory=StatsSpec)
    gates: GateConfig = field(default_factory=GateConfig)
    path: Path | None = None

    def expert_split(self, expert: ExpertSpec) -> Split:
        return replace(self.split, train=expert.train) if expert.train else self.split

    def expert_key(self, expert: ExpertSpec, base_fingerprint: str) -> str:
        """A digest of everything that determines the trained expert, for caching."""
        data = {
            "expert": asdict(expert),
            "split": asdict(self.expert_split(expert)),
            "training": asdict(self.training),
            "base": base_fingerprint,
            "format": 1,
        }
        blob = json.dumps(data, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def multitask_key(self, base_fingerprint: str) -> str:
        """A digest of everything that determines the multitask baseline."""
        keys = [self.expert_key(e, base_fingerprint) for e in self.experts]
        blob = json.dumps({"multitask": keys, "format": 1}).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def tasks(self) -> list[str]:
        """Every task the pool is evaluated on: held-in first, then held-out."""
        return [e.task_name for e in self.experts] + list(self.heldout)


def resolve(pool: str) -> Path:
    """A pool name (a file in experiments/pools) or a path to a pool file."""
    candidate = Path(pool)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise PoolError(f"{candidate}: no such pool file")
        return candidate
    named = POOLS_DIR / f"{pool}.toml"
    if not named.is_file():
        known = ", ".join(sorted(p.stem for p in POOLS_DIR.glob("*.toml"))) or "none"
        raise PoolError(f"unknown pool {pool!r} (known: {known}; or give a path to a .toml file)")
    return named


def _dataclass_from(cls: type[Any], data: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PoolError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise PoolError(f"{where}: {exc}") from exc


def load_pool(pool: str | Path) -> PoolSpec:
    path = resolve(str(pool))
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise PoolError(f"{path}: not valid TOML ({exc})") from exc
    experts = tuple(
        _dataclass_from(ExpertSpec, e, f"{path}: experts[{i}]")
        for i, e in enumerate(data.get("experts", []))
    )
    if not experts:
        raise PoolError(f"{path}: a pool needs at least one [[experts]] entry")
    names = [e.name for e in experts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PoolError(f"{path}: expert names must be unique; repeated: {duplicates}")
    heldout = tuple(str(h["task"]) for h in data.get("heldout", []))
    return PoolSpec(
        name=str(data.get("name", path.stem)),
        base_model=str(data.get("base_model", "all-MiniLM-L6-v2")),
        experts=experts,
        heldout=heldout,
        split=_dataclass_from(Split, data.get("split", {}), f"{path}: [split]"),
        training=_dataclass_from(TrainConfig, data.get("training", {}), f"{path}: [training]"),
        stats=_dataclass_from(StatsSpec, data.get("stats", {}), f"{path}: [stats]"),
        gates=_dataclass_from(GateConfig, data.get("gates", {}), f"{path}: [gates]"),
        path=path,
    )
