"""Tasks without fetched data: splits, text cleaning, the parsers on tiny samples, fetching
from a folder of .deb files built here, and the `data` commands."""

from __future__ import annotations

import argparse
import gzip
import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from moerge.tasks import TASKS, FetchError, Split, TaskError, default_data_dir, fetch, load_task
from moerge.tasks.cli import add_commands, run
from moerge.tasks.core import clean_text, dedupe, split_examples
from moerge.tasks.dictd import DictdError, Dictionary, decode_b64, encode_b64
from moerge.tasks.dictionaries import devil_text, foldoc_text, gcide_text, jargon_text
from moerge.tasks.fetch import extract_files, read_control
from moerge.tasks.fortunes import FOLDERS, fortune_files, read_fortunes, strip_attribution
from moerge.tasks.gcide import clean_markup, subject_definitions
from moerge.tasks.wordnet import read_glosses

# -- splits ---------------------------------------------------------------------------------


def _pairs(sizes: dict[str, int]) -> list[tuple[str, str]]:
    return [(f"{label} text {i}", label) for label, n in sizes.items() for i in range(n)]


def test_splits_are_stratified_disjoint_capped_and_deterministic() -> None:
    pairs = _pairs({"a": 500, "b": 120, "c": 10, "d": 3, "e": 2})
    split = Split(train=50, validation=20, test=20, seed=7)
    train, val, test = split_examples(pairs, ["a", "b", "c", "d", "e"], split)
    counts = [Counter(x.label for x in part) for part in (train, val, test)]
    assert counts[2] == {"a": 20, "b": 20, "c": 2, "d": 1}
    assert counts[1] == {"a": 20, "b": 20, "c": 2, "d": 1}
    assert counts[0] == {"a": 50, "b": 50, "c": 6, "d": 1, "e": 2}
    texts = [{x.text for x in part} for part in (train, val, test)]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    assert split_examples(pairs, ["a", "b", "c", "d", "e"], split) == (train, val, test)
    other = split_examples(pairs, ["a", "b", "c", "d", "e"], Split(50, 20, 20, seed=8))
    assert {x.text for x in other[2]} != texts[2]


def test_raising_the_train_cap_keeps_the_test_and_validation_sets() -> None:
    pairs = _pairs({"a": 400, "b": 90})
    small = split_examples(pairs, ["a", "b"], Split(train=10))
    large = split_examples(pairs, ["a", "b"], Split(train=1000))
    assert large[1:] == small[1:]
    assert {x.text for x in small[0]} < {x.text for x in large[0]}
    assert len(large[0]) == (400 - 80) + (90 - 36)


def test_split_rejects_negative_caps_and_ignores_other_labels() -> None:
    with pytest.raises(ValueError, match="train"):
        Split(train=-1)
    train, _, _ = split_examples(_pairs({"a": 5, "z": 5}), ["a"], Split())
    assert {x.label for x in train} == {"a"}


def test_clean_text_and_dedupe() -> None:
    assert clean_text("\x1b[33mHello\x1b[m\n\t  wor_\x08ld ") == "Hello world"
    long = " ".join(["word"] * 300)
    assert len(clean_text(long)) <= 600 and clean_text(long).endswith("word")
    pairs = [("same", "a"), (" same ", "a"), ("both", "a"), ("both", "b"), ("  ", "a"), ("x", "b")]
    assert dedupe(pairs) == [("same", "a"), ("x", "b")]


# -- dictd ----------------------------------------------------------------------------------


def test_dictd_base64() -> None:
    assert [decode_b64(x) for x in ("A", "B", "/", "BA", "Kj", "5I")] == [0, 1, 63, 64, 675, 3656]
    assert all(decode_b64(encode_b64(n)) == n for n in (0, 1, 63, 64, 4095, 39952321))
    with pytest.raises(DictdError, match="'!'"):
        decode_b64("A!")


def _dictd(folder: Path, name: str, entries: list[tuple[str, str]]) -> Dictionary:
    data, index = b"", []
    for headword, text in entries:
        raw = text.encode()
        index.append(f"{headword}\t{encode_b64(len(data))}\t{encode_b64(len(raw))}")
        data += raw
    (folder / f"{name}.dict.dz").write_bytes(gzip.compress(data))
    (folder / f"{name}.index").write_text("\n".join(index) + "\n")
    return Dictionary.open(folder, name)


def test_dictd_entries_skip_meta_and_shared_entries(tmp_path: Path) -> None:
    _dictd(tmp_path, "tiny", [("00-database-info", "about"), ("cat", "Cat\n a pet\n")])
    with (tmp_path / "tiny.index").open("a") as index:
        index.write("kitty\tF\tL\n")
    book = Dictionary.open(tmp_path, "tiny")
    assert [entry.headword for entry in book.index] == ["00-database-info", "cat", "kitty"]
    assert [(e.headword, text) for e, text in book.entries()] == [("cat", "Cat\n a pet\n")]


# -- parsers --------------------------------------------------------------------------------

FORTUNE_FILE = """\
Real programmers can write Fortran
in any language.
\t\t-- Ed Post
%
\x1b[33mTwo
  lines\x1b[m
%
A fortune with a dialogue
-- yes -- that is fine
and goes on.
%
%
Last one
    -- Someone, "A long
       title"
"""


def test_fortune_files_are_split_cleaned_and_unattributed(tmp_path: Path) -> None:
    (tmp_path / "computers").write_text(FORTUNE_FILE)
    for name in ("computers.dat", "computers.u8", ".hidden"):
        (tmp_path / name).write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "computers")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in fortune_files(tmp_path)] == ["computers"]
    entries = [clean_text(x) for x in read_fortunes(tmp_path / "computers")]
    assert entries == [
        "Real programmers can write Fortran in any language.",
        "Two lines",
        "A fortune with a dialogue -- yes -- that is fine and goes on.",
        "Last one",
    ]
    assert strip_attribution("-- only an attribution") == "-- only an attribution"


def test_slovak_fortunes_are_told_apart_from_czech(tmp_path: Path) -> None:
    folder = tmp_path / "usr/share/games/fortunes/cs"
    folder.mkdir(parents=True)
    for name in ("citace", "klasik-sk", "klasik-cz"):
        (folder / name).write_text("x\n")
    files = {f.language: [p.name for p in f.files(tmp_path)] for f in FOLDERS if f.folder == "cs"}
    assert files == {"cs": ["citace", "klasik-cz"], "sk": ["klasik-sk"]}


GCIDE_SAMPLE = r"""
Ahu \A"hu\, n. [Native name.] (Zool.)
   The Asiatic gazelle.
   [1913 Webster]

Fixed \Fixed\ (f[i^]kst), a.
   1. Securely placed or fastened; settled.
      [1913 Webster]

   2. (Chem.) Stable; non-volatile {co["o]peration}.
      [1913 Webster]

   {Fixed pivot} (Mil.), the fixed point about which any line of
      troops wheels.

   {Fixed air} (Old Chem.), carbonic acid.

Tort \Tort\, n. (Law)
   Any civil wrong or injury.
   [1913 Webster]

Bone \Bone\, n. (Anat.) (Zool.)
   Part of a skeleton.
   [1913 Webster]

Owl \Owl\, n. (Zool.)
   See {Owlet}.
   [1913 Webster]
"""


def test_gcide_subject_definitions() -> None:
    found = [(clean_text(text), label) for text, label in subject_definitions(GCIDE_SAMPLE)]
    assert found == [
        ("The Asiatic gazelle.", "zoology"),
        ("Stable; non-volatile coöperation.", "chemistry"),
        ("the fixed point about which any line of troops wheels.", "military"),
        ("Any civil wrong or injury.", "law"),
    ]
    assert clean_markup("[=a]b [ae] [1913 Webster] {x}") == "āb æ  x"


WORDNET_SAMPLE = """\
  1 This software and database is being provided to you, the LICENSEE, by
00015388 03 n 01 animal 0 002 @ 00004475 n 0000 ~ 01313093 n 0000 | a living organism; "animals move"
02084071 05 n 01 dog 0 001 @ 02083346 n 0000 | a member of the genus Canis; "the dog barked"\x20\x20
00001740 29 v 01 breathe 0 001 * 00005041 v 0000 | draw air into the lungs
"""


def test_wordnet_glosses(tmp_path: Path) -> None:
    path = tmp_path / "data.noun"
    path.write_bytes(WORDNET_SAMPLE.encode("latin-1"))
    assert list(read_glosses(path)) == [
        ("noun.Tops", "a living organism"),
        ("noun.animal", "a member of the genus Canis"),
        ("verb.body", "draw air into the lungs"),
    ]
    assert list(read_glosses(path, examples=True))[1][1].endswith('"the dog barked"')


def test_dictionary_sources_lose_their_identifying_boilerplate() -> None:
    foldoc = (
        "TTS\n\n   <application> (TTS) Speech from text.\n\n   [{Jargon File}]\n\n   (1997-05-11)\n"
    )
    assert clean_text(foldoc_text(foldoc)) == "(TTS) Speech from text."
    jargon = "broken\n adj.\n\n    [common] Not working.\n"
    assert clean_text(jargon_text(jargon)) == "Not working."
    assert clean_text(devil_text("ABRIDGE, v.t.  To _shorten_.\n")) == "To shorten."
    assert clean_text(devil_text("ABRACADABRA.\n\n    By it we signify.\n")) == "By it we signify."
    gcide = 'Ahoy \\A*hoy"\\, interj. [OE. a.] (Naut.)\n   A term used in hailing.\n   [1913 Webster] Ahu\n'
    assert clean_text(gcide_text(gcide)) == "A term used in hailing."
    assert gcide_text("Dog\n   a domestic animal\n   [WordNet 1.5]\n") == ""


# -- fetching from a folder and loading a task ------------------------------------------------


def _tar_xz(files: dict[str, bytes], link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
        if link:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "computers"
            tar.addfile(info)
    return buffer.getvalue()


def make_deb(folder: Path, package: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal real .deb: an ar archive of debian-binary, control.tar.xz and data.tar.xz."""
    control = f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
    control += "Maintainer: Test <test@example.org>\nDescription: test data\n"
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", _tar_xz({"./control": control.encode()})),
        ("data.tar.xz", _tar_xz(files, link="./usr/share/games/fortunes/computers.u8")),
    ]
    blob = b"!<arch>\n"
    for name, content in members:
        blob += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(content):<10}`\n".encode()
        blob += content + (b"\n" if len(content) % 2 else b"")
    path = folder / f"{package}_{version.replace(':', '%3a')}_all.deb"
    path.write_bytes(blob)
    return path


def _fortunes_deb(folder: Path, version: str = "1:1.0-1") -> Path:
    topics = {"computers": "a bug in the program", "love": "my heart is yours", "zippy": "yow"}
    files = {
        f"./usr/share/games/fortunes/{name}": "\n%\n".join(
            f"{text} number {i}" for i in range(80)
        ).encode()
        for name, text in topics.items()
    }
    return make_deb(folder, "fortunes", version, files)


def test_fetch_from_a_folder_without_apt_or_dpkg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    debs = tmp_path / "debs"
    debs.mkdir()
    deb = _fortunes_deb(debs)
    assert read_control(deb)["Version"] == "1:1.0-1"
    extract_files(deb, tmp_path / "x")
    assert sorted(p.name for p in (tmp_path / "x/usr/share/games/fortunes").iterdir()) == [
        "computers",
        "love",
        "zippy",
    ]
    with pytest.raises(FetchError, match=r"apt-get download fortunes fortunes-de.*--from-dir"):
        fetch(tmp_path / "data", ["fortunes", "fortunes-de"], progress=False)
    with pytest.raises(FetchError, match="no .deb file for fortunes-de"):
        fetch(tmp_path / "data", ["fortunes", "fortunes-de"], from_dir=debs, progress=False)
    data = fetch(tmp_path / "data", ["fortunes"], from_dir=debs, progress=False)
    marker = json.loads((data / "root/fortunes/.moerge-package.json").read_text())
    assert marker == {"package": "fortunes", "version": "1:1.0-1", "deb": deb.name}


def test_load_task_from_fetched_data_uses_and_renews_its_cache(tmp_path: Path) -> None:
    (tmp_path / "debs").mkdir()
    _fortunes_deb(tmp_path / "debs")
    data = fetch(tmp_path / "data", ["fortunes"], from_dir=tmp_path / "debs", progress=False)
    task = load_task("fortune_topic", data, Split(train=10, validation=5, test=5))
    assert task.label_names == ("computers", "love")
    assert all(label.description for label in task.labels)
    assert (len(task.train), len(task.validation), len(task.test)) == (20, 10, 10)
    cache = data / "tasks/fortune_topic.jsonl"
    assert json.loads(cache.read_text().splitlines()[0])["fortunes"] == "1:1.0-1"
    assert load_task("fortune_topic", data, Split(train=10, validation=5, test=5)) == task
    only = load_task("fortune_topic", data, labels=["love"])
    assert only.name == "fortune_topic[love]" and only.label_names == ("love",)
    with pytest.raises(TaskError, match=r"no label 'zippy'; valid labels: computers, love"):
        load_task("fortune_topic", data, labels=["love", "zippy"])


def test_load_task_errors_name_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TaskError, match="unknown task 'nope'; known tasks: dict_source"):
        load_task("nope", tmp_path)
    with pytest.raises(
        TaskError, match=r"needs package\(s\) dict-gcide.*moerge data fetch --data-dir"
    ):
        load_task("gcide_subject", tmp_path)
    monkeypatch.setenv("MOERGE_DATA_DIR", str(tmp_path / "d"))
    assert default_data_dir() == tmp_path / "d"
    assert set(TASKS) >= {"fortune_topic", "wordnet_noun", "gcide_subject", "dict_source"}


# -- the `data` commands ----------------------------------------------------------------------


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="moerge")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(list(argv)))


def test_data_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("data", "tasks", "--data-dir", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "fortune_topic" in out and "not fetched" in out and "moerge data fetch" in out
    assert (
        _run("data", "fetch", "--data-dir", str(tmp_path), "--from-dir", str(tmp_path / "no")) == 1
    )
    assert capsys.readouterr().err == f"moerge: error: {tmp_path / 'no'} is not a folder\n"
    _fortunes_deb(tmp_path)
    argv = ["data", "fetch", "--data-dir", str(tmp_path / "d"), "--from-dir", str(tmp_path)]
    assert _run(*argv, "--packages", "fortunes") == 0
    captured = capsys.readouterr()
    assert "moerge: fortunes 1:1.0-1: extracted" in captured.err
    assert _run("data", "tasks", "--data-dir", str(tmp_path / "d")) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "fortune_topic" in line)
    assert row.split()[2:5] == ["2", "80/80/80", "160"]
