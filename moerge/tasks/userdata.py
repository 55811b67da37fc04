"""A user's own labelled data: examples in CSV or JSONL, label descriptions in JSON or CSV.

Examples (chosen by the file's suffix):

    data.csv     a header row with `text` and `label` columns (others are ignored)
    data.jsonl   one JSON object per line with string "text" and "label" (blank lines skipped)

Label descriptions, one per label, in natural language (scoring compares text
embeddings with label-description embeddings):

    labels.json  {"pos": "a positive review", "neg": "a negative review"}
    labels.csv   a header row with `label` and `description` columns

Every problem is a TaskError naming the file and line. Texts are cleaned as for the
built-in tasks: whitespace collapsed, cut at ~600 characters, exact repeats dropped, and
texts that occur under two different labels dropped as ambiguous.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from moerge.experts.manifest import Label
from moerge.tasks.core import (
    DEFAULT_SPLIT,
    Split,
    TaskData,
    TaskError,
    build_task,
    clean_text,
    dedupe,
)

DATA_SUFFIXES = (".csv", ".jsonl", ".ndjson")
LABEL_SUFFIXES = (".json", ".csv")


def load_user_task(
    data_path: Path,
    labels_path: Path,
    name: str | None = None,
    split: Split = DEFAULT_SPLIT,
    *,
    description: str | None = None,
) -> TaskData:
    """Read, check and split a user's labelled examples; the name defaults to the file stem."""
    data_path, labels_path = Path(data_path), Path(labels_path)
    labels = read_labels(labels_path)
    known = {label.name for label in labels}
    rows = []
    for line, text, label in read_rows(data_path):
        if label not in known:
            raise TaskError(
                f"{data_path}:{line}: label {label!r} is not in {labels_path.name} "
                f"(known: {', '.join(sorted(known))})"
            )
        rows.append((text, label))
    if not rows:
        raise TaskError(f"{data_path}: no examples")
    title = name or data_path.stem
    summary = description or f"user task {title}: " + "; ".join(x.description for x in labels)
    return build_task(title, clean_text(summary, 300), labels, dedupe(rows), split)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TaskError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise TaskError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise TaskError(f"{path}: cannot read ({exc.strerror})") from None


def _suffix(path: Path, allowed: tuple[str, ...]) -> str:
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise TaskError(f"{path}: unsupported file type {suffix or '(none)'}; use {allowed}")
    return suffix


def read_rows(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line number, text, label) of each example; empty texts and labels are errors."""
    rows = _csv_rows(path) if _suffix(path, DATA_SUFFIXES) == ".csv" else _jsonl_rows(path)
    for line, text, label in rows:
        if not clean_text(text):
            raise TaskError(f"{path}:{line}: empty text")
        if not label.strip():
            raise TaskError(f"{path}:{line}: empty label")
        yield line, text, label.strip()


def _csv_records(path: Path, columns: tuple[str, str]) -> Iterator[tuple[int, str, str]]:
    """(line, first, second) column values of a CSV file with a header naming both columns."""
    reader = csv.DictReader(io.StringIO(_read(path), newline=""))
    header = [name.strip() for name in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [column for column in columns if column not in header]
    if missing:
        raise TaskError(
            f"{path}:1: missing column {', '.join(map(repr, missing))} "
            f"(the header has: {', '.join(header) or 'nothing'})"
        )
    try:
        for record in reader:
            first, second = (record.get(column) for column in columns)
            if first is None or second is None:
                raise TaskError(f"{path}:{reader.line_num}: too few fields")
            yield reader.line_num, first, second
    except csv.Error as exc:
        raise TaskError(f"{path}:{reader.line_num}: bad CSV ({exc})") from None


def _csv_rows(path: Path) -> Iterator[tuple[int, str, str]]:
    return _csv_records(path, ("text", "label"))


def _jsonl_rows(path: Path) -> Iterator[tuple[int, str, str]]:
    for line, raw in enumerate(_read(path).splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TaskError(f"{path}:{line}: bad JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise TaskError(f"{path}:{line}: expected a JSON object with text and label")
        for key in ("text", "label"):
            if key not in record:
                raise TaskError(f"{path}:{line}: missing {key!r}")
            if not isinstance(record[key], str):
                raise TaskError(f"{path}:{line}: {key!r} must be a string")
        yield line, record["text"], record["label"]


def read_labels(path: Path) -> tuple[Label, ...]:
    """Labels and their descriptions, in file order; each label once, each described."""
    if _suffix(path, LABEL_SUFFIXES) == ".csv":
        pairs = list(_csv_records(path, ("label", "description")))
    else:
        pairs = _json_labels(path)
    labels: dict[str, Label] = {}
    for line, name, text in pairs:
        name, text = name.strip(), clean_text(text or "")
        if not name:
            raise TaskError(f"{path}:{line}: empty label name")
        if name in labels:
            raise TaskError(f"{path}:{line}: duplicate label {name!r}")
        if not text:
            raise TaskError(f"{path}:{line}: label {name!r} has no description")
        labels[name] = Label(name, text)
    if not labels:
        raise TaskError(f"{path}: no labels")
    return tuple(labels.values())


class _Pairs(list[tuple[str, object]]):
    """The (key, value) pairs of a JSON object, in order, repeats kept."""


def _json_labels(path: Path) -> list[tuple[int, str, str]]:
    """(line, label, description) of a JSON object; lines are found from the raw text."""
    text = _read(path)
    try:
        items = json.loads(text, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as exc:
        raise TaskError(f"{path}:{exc.lineno}: bad JSON ({exc.msg})") from None
    if not isinstance(items, _Pairs):
        raise TaskError(f'{path}:1: expected a JSON object {{"label": "description", ...}}')
    found, cursor = [], 0
    for key, value in items:
        cursor = max(text.find(json.dumps(key, ensure_ascii=False), cursor), cursor)
        line = text.count("\n", 0, cursor) + 1
        if not isinstance(value, str):
            raise TaskError(f"{path}:{line}: the description of {key!r} must be a string")
        found.append((line, key, value))
        cursor += 1
    return found
