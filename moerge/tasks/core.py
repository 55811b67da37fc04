"""Labelled text tasks: their data types, the task registry, text cleaning and splits.

A task is built from Debian packages fetched into a data directory (see
`moerge.tasks.fetch`). Its cleaned examples are cached as JSONL under
`<data_dir>/tasks/<name>.jsonl`, keyed to the package versions, so only the
first load parses the raw files.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from moerge.experts.manifest import Label

MAX_TEXT_CHARS = 600
CACHE_FORMAT = 1
PACKAGE_MARKER = ".moerge-package.json"
_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_OVERSTRIKE = re.compile(r".\x08")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]")
_SPACE = re.compile(r"\s+")


class TaskError(Exception):
    """A task cannot be loaded: missing data, unknown task or label, malformed user data."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str


@dataclass(frozen=True)
class Split:
    """How many examples per class go to each split; deterministic given seed."""

    train: int = 300
    validation: int = 40
    test: int = 40
    seed: int = 0

    def __post_init__(self) -> None:
        for field_name in ("train", "validation", "test"):
            if getattr(self, field_name) < 0:
                raise ValueError(f"Split.{field_name} must be >= 0")


DEFAULT_SPLIT = Split()


@dataclass(frozen=True)
class TaskData:
    name: str
    description: str
    labels: tuple[Label, ...]
    train: tuple[Example, ...]
    validation: tuple[Example, ...]
    test: tuple[Example, ...]

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.labels)


# A loader gets a function from a package name to its extracted tree; yields (text, label).
Loader = Callable[[Callable[[str], Path]], Iterable[tuple[str, str]]]


@dataclass(frozen=True)
class TaskSource:
    """A registered task: its candidate labels, the packages it reads and their parser.

    `loader(root_of)` gets a function mapping a package name to its extracted tree and
    yields raw (text, label) pairs. Labels with fewer than `min_examples` examples after
    cleaning are left out of the task; `version` is raised when the parser's output changes,
    which invalidates cached examples.
    """

    name: str
    description: str
    packages: tuple[str, ...]
    labels: tuple[Label, ...]
    loader: Loader
    min_examples: int = 3
    version: int = 1


TASKS: dict[str, TaskSource] = {}


def register(source: TaskSource) -> TaskSource:
    """Add a task to the registry; a name may be registered once."""
    if source.name in TASKS:
        raise ValueError(f"task {source.name!r} is registered twice")
    TASKS[source.name] = source
    return source


def default_data_dir() -> Path:
    """Where fetched packages and task caches live: $MOERGE_DATA_DIR or ~/.cache/moerge/data."""
    env = os.environ.get("MOERGE_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "moerge" / "data"


def strip_escapes(text: str) -> str:
    """Drop terminal colour escapes and backspace overstrikes, keeping the line structure."""
    return _OVERSTRIKE.sub("", _ANSI.sub("", text))


def clean_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Drop escapes and control characters, collapse whitespace, cut texts past `limit`."""
    text = _SPACE.sub(" ", _CONTROL.sub(" ", strip_escapes(text))).strip()
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit + 1)
    return text[: cut if cut > limit // 2 else limit].rstrip()


def dedupe(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Clean texts; drop empty ones, repeats, and texts that occur under several labels."""
    first: dict[str, str] = {}
    ambiguous: set[str] = set()
    for raw, label in pairs:
        text = clean_text(raw)
        if not text:
            continue
        seen = first.setdefault(text, label)
        if seen != label:
            ambiguous.add(text)
    return [(text, label) for text, label in first.items() if text not in ambiguous]


def _portions(count: int, split: Split) -> tuple[int, int]:
    """Test and validation sizes for a class: the caps, at most ~1/5 each of a small class."""
    share = count // 5 if count >= 5 else (1 if count >= 3 else 0)
    return min(split.test, share), min(split.validation, share)


def split_examples(
    pairs: Iterable[tuple[str, str]], labels: Sequence[str], split: Split
) -> tuple[tuple[Example, ...], tuple[Example, ...], tuple[Example, ...]]:
    """Stratified (train, validation, test) of (text, label) pairs of the given labels.

    Each class is shuffled by its own seeded generator, then test is taken first and
    validation next, so raising a train cap never changes the test set.
    """
    by_label: dict[str, list[str]] = {name: [] for name in labels}
    for text, label in pairs:
        if label in by_label:
            by_label[label].append(text)
    parts: tuple[list[Example], list[Example], list[Example]] = ([], [], [])
    for name, texts in by_label.items():
        random.Random(f"{split.seed}:{name}").shuffle(texts)
        n_test, n_val = _portions(len(texts), split)
        chosen = (texts[n_test + n_val :][: split.train], texts[n_test : n_test + n_val])
        for part, group in zip(parts, (*chosen, texts[:n_test]), strict=True):
            part.extend(Example(text, name) for text in group)
    for index, part in enumerate(parts):
        random.Random(f"{split.seed}:order:{index}").shuffle(part)
    return tuple(parts[0]), tuple(parts[1]), tuple(parts[2])


def restrict_labels(
    task: str, labels: tuple[Label, ...], wanted: Sequence[str] | None
) -> tuple[Label, ...]:
    """The labels named in `wanted`, in the task's order; TaskError on an unknown name."""
    if wanted is None:
        return labels
    if isinstance(wanted, str):
        wanted = [wanted]
    if not wanted:
        raise TaskError(f"task {task}: the label subset is empty")
    known = {label.name for label in labels}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise TaskError(
            f"task {task} has no label {', '.join(map(repr, unknown))}; "
            f"valid labels: {', '.join(label.name for label in labels)}"
        )
    return tuple(label for label in labels if label.name in set(wanted))


def build_task(
    name: str,
    description: str,
    labels: tuple[Label, ...],
    pairs: Iterable[tuple[str, str]],
    split: Split,
) -> TaskData:
    """Split the (text, label) pairs of the given labels into a TaskData."""
    train, validation, test = split_examples(pairs, [x.name for x in labels], split)
    return TaskData(name, description, labels, train, validation, test)


def installed_version(data_dir: Path, package: str) -> str | None:
    """The version of a package extracted into data_dir, or None when it is not there."""
    marker = data_dir / "root" / package / PACKAGE_MARKER
    try:
        return str(json.loads(marker.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _versions(source: TaskSource, data_dir: Path) -> dict[str, str]:
    versions = {pkg: installed_version(data_dir, pkg) for pkg in source.packages}
    missing = [pkg for pkg, version in versions.items() if version is None]
    if missing:
        flag = "" if data_dir == default_data_dir() else f" --data-dir {data_dir}"
        raise TaskError(
            f"task {source.name} needs package(s) {', '.join(missing)}, not found in {data_dir}; "
            f"run `moerge data fetch{flag}` first"
        )
    return {pkg: str(version) for pkg, version in versions.items()}


def _cache_key(source: TaskSource, versions: dict[str, str]) -> dict[str, object]:
    return {"task": source.name, "format": CACHE_FORMAT, "loader": source.version, **versions}


def _read_cache(path: Path, key: dict[str, object]) -> list[tuple[str, str]] | None:
    try:
        with path.open(encoding="utf-8") as handle:
            if json.loads(handle.readline()) != key:
                return None
            return [(text, label) for text, label in map(json.loads, handle)]
    except (OSError, ValueError):
        return None


def _write_cache(path: Path, key: dict[str, object], pairs: list[tuple[str, str]]) -> None:
    """Write the cache atomically; a read-only data directory just goes without one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps(key) + "\n")
            handle.writelines(json.dumps(pair, ensure_ascii=False) + "\n" for pair in pairs)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def source_of(name: str) -> TaskSource:
    """The registered task of that name, or a TaskError listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise TaskError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


def task_examples(
    name: str, data_dir: Path | None = None
) -> tuple[tuple[Label, ...], list[tuple[str, str]]]:
    """A task's labels and all its cleaned (text, label) pairs, from the cache when valid."""
    source = source_of(name)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    key = _cache_key(source, _versions(source, data_dir))
    cache = data_dir / "tasks" / f"{name}.jsonl"
    pairs = _read_cache(cache, key)
    if pairs is None:
        known = {label.name for label in source.labels}
        raw = source.loader(lambda package: data_dir / "root" / package)
        pairs = dedupe(pair for pair in raw if pair[1] in known)
        _write_cache(cache, key, pairs)
    counts = Counter(label for _, label in pairs)
    labels = tuple(x for x in source.labels if counts[x.name] >= max(source.min_examples, 1))
    return labels, pairs


def load_task(
    name: str,
    data_dir: Path | None = None,
    split: Split = Split(),
    labels: Sequence[str] | None = None,
) -> TaskData:
    """Load a registered task, optionally restricted to some of its labels, and split it."""
    all_labels, pairs = task_examples(name, data_dir)
    chosen = restrict_labels(name, all_labels, labels)
    title = name if labels is None else f"{name}[{','.join(x.name for x in chosen)}]"
    return build_task(title, source_of(name).description, chosen, pairs, split)
