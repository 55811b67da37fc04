"""GCIDE (Webster 1913) markup and the subject-field labels of its definitions.

A definition names its field in parentheses: `(Zool.)`, `(Bot.)`, and a few without
the period, `(Law)`, `(Physics)`. The label sits in one of three places:

    Ahu \\A"hu\\, n. [Native name.] (Zool.)     at the end of the headword lines
       The Asiatic gazelle.
       [1913 Webster]
       2. (Chem.) Stable; non-volatile.        at the start of a numbered sense
       {Fixed pivot} (Mil.), the fixed point   after a phrase being defined

A definition runs until its source line (`[1913 Webster]`), a blank line or the next
sense. Definitions naming several fields, e.g. `(Anat. & Zool.)`, are skipped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

FIELDS: dict[str, str] = {
    "Zool": "zoology",
    "Bot": "botany",
    "Chem": "chemistry",
    "Med": "medicine",
    "Anat": "anatomy",
    "Law": "law",
    "Naut": "nautical",
    "Min": "mineralogy",
    "Mus": "music",
    "Arch": "architecture",
    "Mil": "military",
    "Physics": "physics",
    "Geol": "geology",
    "Math": "mathematics",
    "Astron": "astronomy",
    "Her": "heraldry",
    "Gram": "grammar",
    "Eccl": "ecclesiastical",
}
DESCRIPTIONS: dict[str, str] = {
    "zoology": "zoology and animals",
    "botany": "botany and plants",
    "chemistry": "chemistry and chemical substances",
    "medicine": "medicine and diseases",
    "anatomy": "anatomy of the body",
    "law": "law and legal terms",
    "nautical": "ships, sailing and the sea",
    "mineralogy": "minerals and mineralogy",
    "music": "music and musical terms",
    "architecture": "architecture and building",
    "military": "the military and warfare",
    "physics": "physics",
    "geology": "geology, rocks and the earth",
    "mathematics": "mathematics",
    "astronomy": "astronomy, stars and planets",
    "heraldry": "heraldry and coats of arms",
    "grammar": "grammar and parts of speech",
    "ecclesiastical": "the church and its clergy",
}

_KNOWN = re.compile(r"\((?:" + "|".join(FIELDS) + r")\.?\)")
_TOKEN = re.compile(r"\(([A-Z][^()\n]{0,40})\)")
_RUN_BEFORE = re.compile(r"(?:\([A-Z][^()\n]{0,40}\)[ \t]*)+$")
_RUN_AFTER = re.compile(r"(?:[ \t]*\([A-Z][^()\n]{0,40}\))*")
_SENSE_PREFIX = re.compile(r"[ \t]+(?:\d+\.[ \t]+)?(?:\([a-z]\)[ \t]+)?")
_PHRASE_PREFIX = re.compile(r"[ \t]*\{[^{}\n]+\}[ \t]*(?:\([^()\n]*\)[ \t]*)?")
_MARKERS = re.compile(r"\s*(?:\d+\.\s+)?(?:\([a-z]\)\s+)?")
_END = re.compile(r"\n[ \t]*(?:\[|\n|\d+\.[ \t]|\([a-z]\)[ \t]|Syn:|Note:)")
_SEE_ONLY = re.compile(r"(?:See|Same as)\b[^.;]*\.?")
_MAX_BODY = 3000
_DROPPED = str.maketrans("", "", "[]{}")

_MARKS = {
    '"': "\u0308",
    "'": "\u0301",
    "`": "\u0300",
    "^": "\u0302",
    "~": "\u0303",
    ",": "\u0327",
    "=": "\u0304",
    "-": "\u0304",
    ".": "\u0323",
}
_NAMED = {"ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "deg": "°", "sect": "§", "eth": "ð"}
_ACCENT = re.compile(r"\[([\"'`^~,=.\-])([A-Za-z])\]")
_BREVE = re.compile(r"\[([A-Za-z])\^\]")
_NAMED_CODE = re.compile(r"\[(" + "|".join(_NAMED) + r")\]")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_SOURCE_LINE = re.compile(r"^[ \t]*\[(?![AO]E\])[A-Z0-9][^\]\n]*\][^\n]*$", re.MULTILINE)
_SOURCE_TAIL = re.compile(r"\s+AS\s*$")
_LETTERS = re.compile(r"[^\W\d_]")
_MIN_LETTERS = 4


def clean_markup(text: str) -> str:
    """Accent codes to letters (`co["o]p` -> `coöp`); drop source lines, `[...]` notes, braces."""
    text = _SOURCE_LINE.sub("", text)
    text = _ACCENT.sub(lambda m: m.group(2) + _MARKS[m.group(1)], text)
    text = _BREVE.sub(lambda m: m.group(1) + "\u0306", text)
    text = _NAMED_CODE.sub(lambda m: _NAMED[m.group(1)], text)
    text = _BRACKETS.sub("", _BRACKETS.sub("", text))
    text = text.translate(_DROPPED)
    return unicodedata.normalize("NFC", _SOURCE_TAIL.sub("", text))


def field_of(token: str) -> str | None:
    """The label name of a field abbreviation such as 'Zool.' or 'Law', else None."""
    return FIELDS.get(token.removesuffix("."))


def _body_start(text: str, run_start: int, run_end: int) -> int | None:
    """Where the definition of a label run begins, or None when the run is not a label."""
    line_start = text.rfind("\n", 0, run_start) + 1
    line_end = text.find("\n", run_end)
    line_end = len(text) if line_end < 0 else line_end
    prefix, after = text[line_start:run_start], text[run_end:line_end].strip()
    if _SENSE_PREFIX.fullmatch(prefix):
        return run_end
    if _PHRASE_PREFIX.fullmatch(prefix) and after.startswith(","):
        return text.index(",", run_end) + 1
    if prefix.rstrip()[-1:] not in {".", "]", ",", "\\"}:
        return None
    if not after:
        return line_end
    if after.startswith("["):
        return _closing_bracket(text, text.index("[", run_end))
    return None


def _closing_bracket(text: str, start: int) -> int | None:
    """The position just after the bracket that closes the one at start (nesting counted)."""
    depth = 0
    for pos in range(start, min(len(text), start + _MAX_BODY)):
        depth += {"[": 1, "]": -1}.get(text[pos], 0)
        if depth == 0:
            return pos + 1
    return None


def _body(text: str, start: int) -> str | None:
    """The definition text from start to its end; None when a sense label follows first."""
    marker = _MARKERS.match(text, start)
    start = marker.end() if marker else start
    if text.startswith("(", start) and _TOKEN.match(text, start):
        return None
    window = text[start : start + _MAX_BODY]
    end = _END.search(window)
    return window[: end.start()] if end else window


def _definition(text: str, run_start: int, run_end: int) -> tuple[str, str] | None:
    """(definition, label) for the label run at text[run_start:run_end], if it is one."""
    labels = {field_of(token) for token in _TOKEN.findall(text, run_start, run_end)}
    if len(labels) != 1 or None in labels:
        return None
    start = _body_start(text, run_start, run_end)
    body = _body(text, start) if start is not None else None
    if body is None:
        return None
    others = {field_of(token) for token in _TOKEN.findall(body)} - {None}
    if others - labels:
        return None
    label = labels.pop()
    body = clean_markup(_KNOWN.sub("", body)).strip()
    if len(_LETTERS.findall(body)) < _MIN_LETTERS or _SEE_ONLY.fullmatch(body):
        return None
    return body, str(label)


def subject_definitions(text: str) -> Iterator[tuple[str, str]]:
    """(definition, label name) of every definition with one known field label."""
    done = -1
    for match in _KNOWN.finditer(text):
        if match.start() < done:
            continue
        line_start = text.rfind("\n", 0, match.start()) + 1
        before = _RUN_BEFORE.search(text, line_start, match.start())
        run_start = before.start() if before else match.start()
        after = _RUN_AFTER.match(text, match.end())
        run_end = after.end() if after else match.end()
        done = run_end
        found = _definition(text, run_start, run_end)
        if found is not None:
            yield found
