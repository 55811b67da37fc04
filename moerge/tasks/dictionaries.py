"""Tasks on dictd dictionaries: the subject field of a GCIDE definition, and which work a
definition comes from (FOLDOC, the Jargon File, The Devil's Dictionary, GCIDE, WordNet).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from moerge.experts.manifest import Label
from moerge.tasks.core import TaskSource, clean_text, register
from moerge.tasks.dictd import Dictionary, read_data
from moerge.tasks.gcide import DESCRIPTIONS, FIELDS, clean_markup, subject_definitions
from moerge.tasks.wordnet import POS_FILES, WORDNET, read_glosses

DICTD = Path("usr/share/dictd")
PER_SOURCE = 4000

SUBJECTS: tuple[Label, ...] = tuple(
    Label(name, DESCRIPTIONS[name]) for name in dict.fromkeys(FIELDS.values())
)

SOURCES: tuple[Label, ...] = (
    Label("foldoc", "a dictionary of computing terms"),
    Label("jargon", "hacker slang from the Jargon File"),
    Label("devil", "satirical definitions from The Devil's Dictionary"),
    Label("gcide", "an unabridged English dictionary (Webster 1913)"),
    Label("wordnet", "the WordNet lexical database of English"),
)

_HEADER = re.compile(r"\A.*?\n[ \t]*\n", re.DOTALL)
_BRACKET_LINE = re.compile(r"^[ \t]*\[[^\]\n]*\][ \t]*$", re.MULTILINE)
_FOLDOC_TAG = re.compile(r"<[a-z][a-z ,/-]{1,40}>")
_FOLDOC_DATE = re.compile(r"\(\d{4}-\d\d-\d\d\)")
_DEVIL_HEAD = re.compile(
    r"\A\s*[A-Z][A-Z0-9 '\-]*(?:,\s*(?:[a-z]{1,4}\.\s*)+(?:(?:and|or|&)\s*(?:[a-z]{1,4}\.\s*)+)?|\.)"
)
_LEADING_NOTE = re.compile(r"\A\s*\[[^\]]*\]")
_UNDERSCORES = re.compile(r"\b_([^_\n]+)_\b")


def without_header(entry: str) -> str:
    """An entry without its headword lines (everything up to the first blank line)."""
    match = _HEADER.match(entry)
    return entry[match.end() :] if match else entry.partition("\n")[2]


def foldoc_text(entry: str) -> str:
    """A FOLDOC definition without headword, `<subject>` tags, dates and `[source]` lines."""
    body = _BRACKET_LINE.sub("", without_header(entry))
    body = _FOLDOC_DATE.sub("", _FOLDOC_TAG.sub("", body))
    return body.replace("{", "").replace("}", "")


def jargon_text(entry: str) -> str:
    """A Jargon File definition without headword, pronunciation and `[usage]` note."""
    body = _LEADING_NOTE.sub("", without_header(entry), count=1)
    return body.replace("{", "").replace("}", "")


def devil_text(entry: str) -> str:
    """A Devil's Dictionary definition without its `HEADWORD, n.` opening."""
    body = _DEVIL_HEAD.sub("", entry, count=1)
    return _UNDERSCORES.sub(r"\1", body).replace("{", "").replace("}", "")


def gcide_text(entry: str) -> str:
    """A GCIDE entry without headword line and markup; entries taken from WordNet are empty."""
    if "[WordNet" in entry:
        return ""
    return clean_markup(entry).partition("\n")[2]


def _sample(items: list[str], name: str, clean: Callable[[str], str]) -> Iterator[str]:
    """Up to PER_SOURCE non-empty cleaned texts, in a fixed pseudo-random order."""
    order = list(range(len(items)))
    random.Random(f"dict_source:{name}").shuffle(order)
    kept = 0
    for index in order:
        text = clean(items[index])
        if clean_text(text):
            yield text
            kept += 1
            if kept == PER_SOURCE:
                return


def _entries(root: Path, name: str) -> list[str]:
    return [text for _, text in Dictionary.open(root / DICTD, name).entries()]


def _sources(root_of: Callable[[str], Path]) -> Iterator[tuple[str, str]]:
    cleaners = {"foldoc": foldoc_text, "jargon": jargon_text, "devil": devil_text}
    for name, clean in cleaners.items():
        yield from _labelled(_sample(_entries(root_of(f"dict-{name}"), name), name, clean), name)
    gcide = _entries(root_of("dict-gcide"), "gcide")
    yield from _labelled(_sample(gcide, "gcide", gcide_text), "gcide")
    glosses = [
        gloss
        for file in POS_FILES.values()
        for _, gloss in read_glosses(root_of("wordnet-base") / WORDNET / file, examples=True)
    ]
    yield from _labelled(_sample(glosses, "wordnet", str), "wordnet")


def _labelled(texts: Iterable[str], label: str) -> Iterator[tuple[str, str]]:
    return ((text, label) for text in texts)


def _subjects(root_of: Callable[[str], Path]) -> Iterator[tuple[str, str]]:
    data = read_data(root_of("dict-gcide") / DICTD / "gcide.dict.dz")
    return subject_definitions(data.decode("utf-8", errors="replace"))


register(
    TaskSource(
        name="gcide_subject",
        description="subject field of an English dictionary definition",
        packages=("dict-gcide",),
        labels=SUBJECTS,
        loader=_subjects,
        min_examples=50,
    )
)

register(
    TaskSource(
        name="dict_source",
        description="which reference work a dictionary definition comes from",
        packages=("dict-foldoc", "dict-jargon", "dict-devil", "dict-gcide", "wordnet-base"),
        labels=SOURCES,
        loader=_sources,
    )
)
