"""A user's own data: CSV and JSONL examples, JSON and CSV label files, and every error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moerge.experts.manifest import Label
from moerge.tasks import Split, TaskError, load_user_task

LABELS = {"pos": "a positive review", "neg": "a negative review"}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _csv_data(path: Path, per_label: int = 10) -> Path:
    rows = ["text,label,extra"]
    rows += [f'"great, film {i}",pos,x' for i in range(per_label)]
    rows += [f"awful film {i},neg," for i in range(per_label)]
    return _write(path, "\n".join(rows) + "\n")


def test_csv_examples_with_json_labels(tmp_path: Path) -> None:
    data = _csv_data(tmp_path / "reviews.csv")
    labels = _write(tmp_path / "labels.json", json.dumps(LABELS))
    task = load_user_task(data, labels, split=Split(train=5, validation=2, test=2))
    assert task.name == "reviews"
    assert task.labels == (Label("pos", "a positive review"), Label("neg", "a negative review"))
    assert (len(task.train), len(task.validation), len(task.test)) == (10, 4, 4)
    assert "great, film 0" in {x.text for x in task.train + task.validation + task.test}
    assert "a positive review" in task.description


def test_jsonl_examples_with_csv_labels(tmp_path: Path) -> None:
    lines = [
        json.dumps({"text": f"  text\n{i} ", "label": "neg" if i % 2 else "pos"}) for i in range(9)
    ]
    data = _write(tmp_path / "d.jsonl", "\n".join(lines[:4]) + "\n\n" + "\n".join(lines[4:]) + "\n")
    labels = _write(tmp_path / "l.csv", 'label,description\npos,good\nneg,"bad, very"\n')
    task = load_user_task(data, labels, name="mine", description="sentiment")
    assert (task.name, task.description, task.label_names) == ("mine", "sentiment", ("pos", "neg"))
    texts = sorted(x.text for x in task.train + task.validation + task.test)
    assert texts == [f"text {i}" for i in range(9)]


def test_repeated_and_ambiguous_texts_are_dropped(tmp_path: Path) -> None:
    rows = "text,label\nsame,pos\nsame,pos\nboth,pos\nboth,neg\nother,neg\n"
    task = load_user_task(
        _write(tmp_path / "d.csv", rows), _write(tmp_path / "l.json", json.dumps(LABELS))
    )
    assert sorted(x.text for x in task.train + task.validation + task.test) == ["other", "same"]


GOOD_LABELS = json.dumps(LABELS)
DATA_ERRORS = [
    (
        "d.csv",
        "txt,label\nhello,pos\n",
        r"d\.csv:1: missing column 'text' \(the header has: txt, label\)",
    ),
    ("d.csv", "text,label\nhello,pos\n  ,neg\n", r"d\.csv:3: empty text"),
    ("d.csv", "text,label\nhello,pos\nbye\n", r"d\.csv:3: too few fields"),
    (
        "d.csv",
        "text,label\nhello,pos\nbye,meh\n",
        r"d\.csv:3: label 'meh' is not in l\.json \(known: neg, pos\)",
    ),
    ("d.csv", "text,label\nhello, \n", r"d\.csv:2: empty label"),
    ("d.csv", "text,label\n", r"d\.csv: no examples"),
    (
        "d.jsonl",
        '{"text": "a", "label": "pos"}\n{"text": "b", "label": \n',
        r"d\.jsonl:2: bad JSON",
    ),
    (
        "d.jsonl",
        '{"text": "a", "label": "pos"}\n["b", "neg"]\n',
        r"d\.jsonl:2: expected a JSON object",
    ),
    ("d.jsonl", '\n\n{"label": "pos"}\n', r"d\.jsonl:3: missing 'text'"),
    ("d.jsonl", '{"text": 3, "label": "pos"}\n', r"d\.jsonl:1: 'text' must be a string"),
    ("d.jsonl", '{"text": "a", "label": "zzz"}\n', r"d\.jsonl:1: label 'zzz' is not in l\.json"),
    ("d.txt", "hello\n", r"d\.txt: unsupported file type \.txt"),
]


@pytest.mark.parametrize(("name", "content", "message"), DATA_ERRORS)
def test_malformed_data_names_file_and_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    labels = _write(tmp_path / "l.json", GOOD_LABELS)
    with pytest.raises(TaskError, match=message) as error:
        load_user_task(_write(tmp_path / name, content), labels)
    assert str(tmp_path / name) in str(error.value)


LABEL_ERRORS = [
    (
        "l.json",
        '{\n  "pos": "good",\n  "neg": ""\n}\n',
        r"l\.json:3: label 'neg' has no description",
    ),
    ("l.json", '{\n  "pos": "good",\n  "pos": "again"\n}\n', r"l\.json:3: duplicate label 'pos'"),
    (
        "l.json",
        '{\n  "pos": "good",\n  "neg": 3\n}\n',
        r"l\.json:3: the description of 'neg' must be a string",
    ),
    ("l.json", '{\n  "pos": "good",\n  "neg" "bad"\n}\n', r"l\.json:3: bad JSON"),
    ("l.json", '["pos", "neg"]\n', r"l\.json:1: expected a JSON object"),
    ("l.json", "{}\n", r"l\.json: no labels"),
    ("l.csv", "label,description\npos,good\nneg,  \n", r"l\.csv:3: label 'neg' has no description"),
    ("l.csv", "label,description\npos,good\npos,bad\n", r"l\.csv:3: duplicate label 'pos'"),
    ("l.csv", "label,desc\npos,good\n", r"l\.csv:1: missing column 'description'"),
    ("l.csv", "label,description\n,good\n", r"l\.csv:2: empty label name"),
    ("l.yaml", "pos: good\n", r"l\.yaml: unsupported file type"),
]


@pytest.mark.parametrize(("name", "content", "message"), LABEL_ERRORS)
def test_malformed_labels_name_file_and_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    data = _write(tmp_path / "d.csv", "text,label\nhello,pos\nbye,neg\n")
    with pytest.raises(TaskError, match=message):
        load_user_task(data, _write(tmp_path / name, content))


def test_unreadable_files(tmp_path: Path) -> None:
    labels = _write(tmp_path / "l.json", GOOD_LABELS)
    with pytest.raises(TaskError, match=r"nope\.csv: no such file"):
        load_user_task(tmp_path / "nope.csv", labels)
    (tmp_path / "bin.csv").write_bytes(b"text,label\n\xff\xfe,pos\n")
    with pytest.raises(TaskError, match=r"bin\.csv: not UTF-8 text"):
        load_user_task(tmp_path / "bin.csv", labels)
