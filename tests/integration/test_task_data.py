"""Every registered task on the real Debian packages, fetched once per session with apt."""

from __future__ import annotations

import argparse
import re
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest

from moerge.tasks import TASKS, FetchError, Split, fetch, load_task
from moerge.tasks.cli import add_commands, run
from moerge.tasks.core import installed_version
from moerge.tasks.fetch import PACKAGES, control_fields, extract_files, read_control

SMALL = Split(train=20, validation=5, test=5)
LABEL_COUNTS = {
    "wordnet_noun": 24,
    "wordnet_verb": 15,
    "wordnet_pos": 4,
    "gcide_subject": 18,
    "dict_source": 5,
    "fortune_topic": 16,
}
LEFTOVERS = {
    "gcide_subject": re.compile(r"\((?:Zool|Bot|Chem|Med|Anat|Naut|Law|Physics)\.?\)|[\[\]{}]"),
    "dict_source": re.compile(
        r"\[1913 Webster\]|\[WordNet|\[\{?Jargon File|<[a-z]+>|\(\d{4}-\d\d-\d\d\)|^[A-Z]+, n\."
    ),
    "fortune_topic": re.compile(r"\x1b|^%$"),
    "fortune_language": re.compile(r"\x1b|^%$"),
}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_loads_with_described_labels_and_clean_texts(
    task_data_dir: Path, name: str
) -> None:
    task = load_task(name, task_data_dir, SMALL)
    assert len(task.labels) == LABEL_COUNTS.get(name, len(task.labels)) >= 2
    assert all(label.description.strip() for label in task.labels)
    examples = task.train + task.validation + task.test
    assert {x.label for x in examples} == set(task.label_names)
    assert all(x.text.strip() and len(x.text) <= 600 for x in examples)
    assert len({x.text for x in examples}) == len(examples)
    assert Counter(x.label for x in task.test) == {label: 5 for label in task.label_names}
    pattern = LEFTOVERS.get(name)
    assert pattern is None or not [x.text for x in examples if pattern.search(x.text)]
    assert load_task(name, task_data_dir, SMALL) == task
    assert (task_data_dir / "tasks" / f"{name}.jsonl").is_file()


def test_fortune_languages(task_data_dir: Path) -> None:
    task = load_task("fortune_language", task_data_dir, SMALL)
    assert len(task.labels) >= 10
    assert {"en", "de", "ru", "zh", "sk", "cs", "pt"} <= set(task.label_names)
    assert dict((x.name, x.description) for x in task.labels)["de"] == "German language"


def test_a_sub_domain_of_gcide(task_data_dir: Path) -> None:
    life = load_task(
        "gcide_subject", task_data_dir, SMALL, ["zoology", "botany", "medicine", "anatomy"]
    )
    assert life.name == "gcide_subject[zoology,botany,medicine,anatomy]"
    assert {x.label for x in life.train} == {"zoology", "botany", "medicine", "anatomy"}
    full = load_task("gcide_subject", task_data_dir, SMALL)
    assert {x for x in full.test if x.label == "zoology"} == {
        x for x in life.test if x.label == "zoology"
    }


def _snapshot(data_dir: Path) -> dict[str, float]:
    paths = [*(data_dir / "debs").iterdir(), *(data_dir / "root").glob("*/.moerge-package.json")]
    return {str(path): path.stat().st_mtime for path in paths}


def test_fetch_again_is_instant_and_downloads_nothing(task_data_dir: Path) -> None:
    before = _snapshot(task_data_dir)
    start = time.perf_counter()
    assert fetch(task_data_dir, progress=False) == task_data_dir
    assert time.perf_counter() - start < 2
    assert _snapshot(task_data_dir) == before
    assert len(list((task_data_dir / "debs").glob("*.deb"))) == len(PACKAGES)


def test_fetch_from_a_folder_of_debs(task_data_dir: Path, tmp_path: Path) -> None:
    wanted = ["fortunes-ga", "fortunes-eo"]
    data = fetch(tmp_path / "data", wanted, from_dir=task_data_dir / "debs", progress=False)
    for pkg in wanted:
        assert installed_version(data, pkg) == installed_version(task_data_dir, pkg)
    partial = tmp_path / "partial"
    partial.mkdir()
    for deb in (task_data_dir / "debs").glob("fortunes-ga_*.deb"):
        shutil.copy(deb, partial)
    with pytest.raises(
        FetchError, match=r"no \.deb file for fortunes-bg.*apt-get download fortunes-bg`"
    ):
        fetch(tmp_path / "other", ["fortunes-ga", "fortunes-bg"], from_dir=partial, progress=False)


def test_reading_a_deb_without_dpkg_gives_the_same_files(
    task_data_dir: Path, tmp_path: Path
) -> None:
    deb = next((task_data_dir / "debs").glob("fortunes-cs_*.deb"))
    assert read_control(deb) == control_fields(deb)
    extract_files(deb, tmp_path)
    by_dpkg = task_data_dir / "root" / "fortunes-cs"

    def files(root: Path) -> set[str]:
        found = {p for p in root.rglob("*") if p.is_file() and not p.is_symlink()}
        return {str(p.relative_to(root)) for p in found} - {".moerge-package.json"}

    assert files(tmp_path) == files(by_dpkg)
    sample = Path("usr/share/games/fortunes/cs/klasik-sk")
    assert (tmp_path / sample).read_bytes() == (by_dpkg / sample).read_bytes()


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_an_unknown_package_suggests_apt_get_update(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match=r"moerge-no-such-package.*sudo apt-get update"):
        fetch(tmp_path, ["moerge-no-such-package"], progress=False)


def test_data_tasks_lists_counts(task_data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="moerge")
    add_commands(parser.add_subparsers(dest="command", required=True))
    assert run(parser.parse_args(["data", "tasks", "--data-dir", str(task_data_dir)])) == 0
    out = capsys.readouterr().out
    assert "not fetched" not in out
    row = next(line for line in out.splitlines() if line.startswith("wordnet_noun "))
    assert row.split()[2] == "24"
