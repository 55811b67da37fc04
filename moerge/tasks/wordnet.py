"""Tasks on WordNet glosses: noun and verb supersenses, and the part of speech of a gloss.

A line of `data.<pos>` is `offset lex_filenum ss_type words... pointers... | gloss`;
the lexicographer file number (second field) is the synset's supersense, in the
standard order of WordNet's `lexnames`. Lines starting with two spaces are the
licence header. Glosses end with quoted usage examples after `; "`, which are cut
because they often contain the word being defined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from moerge.experts.manifest import Label
from moerge.tasks.core import TaskSource, register

WORDNET = Path("usr/share/wordnet")
POS_FILES = {
    "noun": "data.noun",
    "verb": "data.verb",
    "adjective": "data.adj",
    "adverb": "data.adv",
}

LEXNAMES: tuple[str, ...] = (
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
)

NOUN_SENSES: tuple[Label, ...] = (
    Label("noun.act", "acts and actions"),
    Label("noun.animal", "animals"),
    Label("noun.artifact", "man-made objects and artifacts"),
    Label("noun.attribute", "attributes and qualities of people and objects"),
    Label("noun.body", "body parts"),
    Label("noun.cognition", "cognition, knowledge and thought"),
    Label("noun.communication", "communication and language"),
    Label("noun.event", "natural events and happenings"),
    Label("noun.feeling", "feelings and emotions"),
    Label("noun.food", "foods and drinks"),
    Label("noun.group", "groupings of people or objects"),
    Label("noun.location", "spatial position and places"),
    Label("noun.object", "natural objects (not man-made)"),
    Label("noun.person", "people"),
    Label("noun.phenomenon", "natural phenomena"),
    Label("noun.plant", "plants"),
    Label("noun.possession", "possession and transfer of possession"),
    Label("noun.process", "natural processes"),
    Label("noun.quantity", "quantities and units of measure"),
    Label("noun.relation", "relations between people, things or ideas"),
    Label("noun.shape", "two- and three-dimensional shapes"),
    Label("noun.state", "stable states of affairs"),
    Label("noun.substance", "substances"),
    Label("noun.time", "time and temporal relations"),
)

VERB_SENSES: tuple[Label, ...] = (
    Label("verb.body", "verbs of grooming, dressing and bodily care"),
    Label("verb.change", "verbs of size, temperature change, intensifying"),
    Label("verb.cognition", "verbs of thinking, judging, analyzing, doubting"),
    Label("verb.communication", "verbs of telling, asking, ordering, singing"),
    Label("verb.competition", "verbs of fighting and athletic activities"),
    Label("verb.consumption", "verbs of eating and drinking"),
    Label("verb.contact", "verbs of touching, hitting, tying, digging"),
    Label("verb.creation", "verbs of sewing, baking, painting, performing"),
    Label("verb.emotion", "verbs of feeling"),
    Label("verb.motion", "verbs of walking, flying, swimming"),
    Label("verb.perception", "verbs of seeing, hearing, feeling"),
    Label("verb.possession", "verbs of buying, selling, owning"),
    Label("verb.social", "verbs of political and social activities and events"),
    Label("verb.stative", "verbs of being, having, spatial relations"),
    Label("verb.weather", "verbs of raining, snowing, thawing, thundering"),
)

PARTS_OF_SPEECH: tuple[Label, ...] = (
    Label("noun", "a noun: a person, place, thing or idea"),
    Label("verb", "a verb: an action, occurrence or state"),
    Label("adjective", "an adjective: a quality or property of a thing"),
    Label("adverb", "an adverb: the manner, degree, time or place of an action"),
)


def read_glosses(path: Path, examples: bool = False) -> Iterator[tuple[str, str]]:
    """(lexicographer file name, gloss) of each synset of a WordNet data file.

    Usage examples (after `; "`) are kept only when `examples` is true.
    """
    with path.open(encoding="latin-1") as handle:
        for line in handle:
            if line.startswith("  "):
                continue
            head, sep, gloss = line.partition(" | ")
            fields = head.split(" ", 2)
            if not sep or len(fields) < 3 or not fields[1].isdigit():
                continue
            lexfile = int(fields[1])
            if not examples:
                gloss = gloss.split('; "', 1)[0]
            if lexfile < len(LEXNAMES):
                yield LEXNAMES[lexfile], gloss.strip()


def _data(root_of: Callable[[str], Path], pos: str) -> Path:
    return root_of("wordnet-base") / WORDNET / POS_FILES[pos]


def _nouns(root_of: Callable[[str], Path]) -> Iterator[tuple[str, str]]:
    return ((gloss, lexname) for lexname, gloss in read_glosses(_data(root_of, "noun")))


def _verbs(root_of: Callable[[str], Path]) -> Iterator[tuple[str, str]]:
    return ((gloss, lexname) for lexname, gloss in read_glosses(_data(root_of, "verb")))


def _parts_of_speech(root_of: Callable[[str], Path]) -> Iterator[tuple[str, str]]:
    for pos in POS_FILES:
        yield from ((gloss, pos) for _, gloss in read_glosses(_data(root_of, pos)))


register(
    TaskSource(
        name="wordnet_noun",
        description="semantic category (supersense) of an English noun, from its definition",
        packages=("wordnet-base",),
        labels=NOUN_SENSES,
        loader=_nouns,
    )
)

register(
    TaskSource(
        name="wordnet_verb",
        description="semantic category (supersense) of an English verb, from its definition",
        packages=("wordnet-base",),
        labels=VERB_SENSES,
        loader=_verbs,
    )
)

register(
    TaskSource(
        name="wordnet_pos",
        description="part of speech of the English word that a dictionary definition defines",
        packages=("wordnet-base",),
        labels=PARTS_OF_SPEECH,
        loader=_parts_of_speech,
    )
)
