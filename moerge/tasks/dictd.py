"""Read dictd databases: a `.index` of headwords and a gzip-compatible `.dict.dz` of entries.

Index lines are `headword<TAB>offset<TAB>length`, offset and length written in dictd's
base64 (digits A-Z a-z 0-9 + /, most significant first) and counting bytes of the
uncompressed text. Several headwords may share one entry.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

B64_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_VALUE = {digit: value for value, digit in enumerate(B64_DIGITS)}
META_PREFIXES = ("00-database", "00database")


class DictdError(ValueError):
    """A dictd file that does not follow the format."""


def decode_b64(text: str) -> int:
    """The number written in dictd base64, e.g. 'B' -> 1, 'BA' -> 64."""
    if not text:
        raise DictdError("empty dictd number")
    value = 0
    for digit in text:
        try:
            value = value * 64 + _VALUE[digit]
        except KeyError:
            raise DictdError(f"{digit!r} is not a dictd base64 digit (in {text!r})") from None
    return value


def encode_b64(value: int) -> str:
    """The dictd base64 form of a non-negative number (the inverse of decode_b64)."""
    if value < 0:
        raise DictdError("dictd numbers are non-negative")
    digits = ""
    while True:
        value, rest = divmod(value, 64)
        digits = B64_DIGITS[rest] + digits
        if value == 0:
            return digits


@dataclass(frozen=True)
class IndexEntry:
    headword: str
    offset: int
    length: int


def read_index(path: Path) -> list[IndexEntry]:
    """All index lines of a dictd `.index` file, in file order."""
    entries = []
    text = path.read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("\t")
        if len(fields) < 3:
            raise DictdError(f"{path}:{number}: expected headword, offset and length")
        entries.append(IndexEntry(fields[0], decode_b64(fields[1]), decode_b64(fields[2])))
    return entries


def read_data(path: Path) -> bytes:
    """The uncompressed text of a `.dict.dz` (gzip-compatible) or plain `.dict` file."""
    return gzip.decompress(path.read_bytes()) if path.suffix == ".dz" else path.read_bytes()


class Dictionary:
    """A dictd database held in memory: its index and its uncompressed text."""

    def __init__(self, index: Path, data: Path) -> None:
        self.name = index.name.removesuffix(".index")
        self.index = read_index(index)
        self.data = read_data(data)

    @classmethod
    def open(cls, folder: Path, name: str) -> Dictionary:
        """The database `name` in a folder (name.index with name.dict.dz or name.dict)."""
        data = folder / f"{name}.dict.dz"
        return cls(folder / f"{name}.index", data if data.exists() else folder / f"{name}.dict")

    def text_of(self, entry: IndexEntry) -> str:
        """The entry's text; bytes that are not UTF-8 are replaced."""
        raw = self.data[entry.offset : entry.offset + entry.length]
        return raw.decode("utf-8", errors="replace")

    def entries(self) -> Iterator[tuple[IndexEntry, str]]:
        """Each distinct entry once (first headword wins), without the 00-database meta entries."""
        seen: set[tuple[int, int]] = set()
        for entry in self.index:
            key = (entry.offset, entry.length)
            if entry.headword.startswith(META_PREFIXES) or key in seen:
                continue
            seen.add(key)
            yield entry, self.text_of(entry)
