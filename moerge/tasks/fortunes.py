"""Tasks on the `fortune` cookie files: topic of an English fortune, language of any fortune.

A fortune file holds entries separated by lines holding only `%`; many entries end
with an attribution line (`-- Mark Twain`), which is removed because it names the
source rather than the content. Files named `*.dat` (indexes), `*.u8` (links or empty
stubs), symbolic links and folders are not fortune files.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from moerge.experts.manifest import Label
from moerge.tasks.core import TaskSource, register, strip_escapes

FORTUNES = Path("usr/share/games/fortunes")
_SEPARATOR = re.compile(r"^%[ \t\r]*$", re.MULTILINE)
_ATTRIBUTION_LINES = 3

TOPICS: tuple[Label, ...] = (
    Label("computers", "computers and programming"),
    Label("songs-poems", "songs and poems"),
    Label("politics", "politics and government"),
    Label("work", "work and the workplace"),
    Label("science", "science and scientists"),
    Label("art", "art, artists and writing"),
    Label("linux", "Linux and free software"),
    Label("startrek", "the Star Trek television series"),
    Label("drugs", "drugs and alcohol"),
    Label("law", "law, lawyers and justice"),
    Label("education", "education, school and teachers"),
    Label("food", "food, cooking and eating"),
    Label("kids", "children and childhood"),
    Label("love", "love and romance"),
    Label("sports", "sports and games"),
    Label("medicine", "medicine, doctors and health"),
)

LANGUAGES: tuple[Label, ...] = (
    Label("en", "English language"),
    Label("de", "German language"),
    Label("es", "Spanish language"),
    Label("it", "Italian language"),
    Label("pt", "Portuguese language"),
    Label("pl", "Polish language"),
    Label("ru", "Russian language"),
    Label("cs", "Czech language"),
    Label("sk", "Slovak language"),
    Label("bg", "Bulgarian language"),
    Label("eo", "Esperanto language"),
    Label("ga", "Irish (Gaelic) language"),
    Label("zh", "Chinese language"),
)

# Files of pictures made of characters, whose language is not their point.
_PICTURES = frozenset({"ascii-art", "asciiart", "mario.arteascii", "banner"})


@dataclass(frozen=True)
class FortuneFolder:
    """The fortune files of one language in one package (`only`/`skip` filter file names)."""

    language: str
    package: str
    folder: str = ""
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()

    def files(self, root: Path) -> list[Path]:
        folder = root / FORTUNES / self.folder
        return [
            path
            for path in fortune_files(folder)
            if (not self.only or path.name in self.only) and path.name not in self.skip
        ]


FOLDERS: tuple[FortuneFolder, ...] = (
    FortuneFolder("en", "fortunes"),
    FortuneFolder("de", "fortunes-de", "de"),
    FortuneFolder("es", "fortunes-es", "es"),
    FortuneFolder("it", "fortunes-it", "it"),
    FortuneFolder("pt", "fortunes-br"),
    FortuneFolder("pt", "fortunes-mario"),
    FortuneFolder("pl", "fortunes-pl", "pl"),
    FortuneFolder("ru", "fortunes-ru", "ru"),
    FortuneFolder("cs", "fortunes-cs", "cs", skip=("klasik-sk",)),
    FortuneFolder("sk", "fortunes-cs", "cs", only=("klasik-sk",)),
    FortuneFolder("bg", "fortunes-bg", "bg"),
    FortuneFolder("eo", "fortunes-eo", "eo"),
    FortuneFolder("ga", "fortunes-ga", "ga"),
    FortuneFolder("zh", "fortunes-zh"),
)


def fortune_files(folder: Path) -> list[Path]:
    """The fortune files directly in a folder, sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file()
        and not path.is_symlink()
        and not path.name.startswith(".")
        and path.suffix not in {".dat", ".u8"}
    )


def strip_attribution(entry: str) -> str:
    """Remove a trailing `-- Author` line (and its indented continuation lines)."""
    lines = entry.rstrip().splitlines()
    for index in range(len(lines) - 1, max(0, len(lines) - 1 - _ATTRIBUTION_LINES), -1):
        if lines[index].lstrip().startswith("--"):
            if all(line[:1] in (" ", "\t") for line in lines[index + 1 :]):
                return "\n".join(lines[:index])
            break
    return "\n".join(lines)


def read_fortunes(path: Path) -> list[str]:
    """The entries of a fortune file, escapes and attributions removed (not yet collapsed)."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    entries = (strip_attribution(strip_escapes(part)) for part in _SEPARATOR.split(text))
    return [entry for entry in entries if entry.strip()]


def _topics(root_of: Callable[[str], Path]) -> Iterator[tuple[str, str]]:
    folder = root_of("fortunes") / FORTUNES
    for label in TOPICS:
        path = folder / label.name
        if path.is_file() and not path.is_symlink():
            yield from ((entry, label.name) for entry in read_fortunes(path))


def _languages(root_of: Callable[[str], Path]) -> Iterator[tuple[str, str]]:
    for source in FOLDERS:
        for path in source.files(root_of(source.package)):
            if path.name not in _PICTURES:
                yield from ((entry, source.language) for entry in read_fortunes(path))


register(
    TaskSource(
        name="fortune_topic",
        description="topic of an English fortune-cookie quotation or joke",
        packages=("fortunes",),
        labels=TOPICS,
        loader=_topics,
        min_examples=70,
    )
)

register(
    TaskSource(
        name="fortune_language",
        description="language of a fortune-cookie quotation, proverb or joke",
        packages=tuple(dict.fromkeys(source.package for source in FOLDERS)),
        labels=LANGUAGES,
        loader=_languages,
        min_examples=100,
    )
)
