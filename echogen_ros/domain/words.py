"""Which words of a phrase the system understands. A phrase is read word by word: common synonyms become the
vocabulary's words ("mug" → "cup"), filler words are dropped ("that is"), and what is left outside the
vocabulary is reported, with the nearest known word where one is close ("bottel" → "bottle"). A phrase that
names no known object ("the scissors") is not grounded: the model would map it to <unk> and answer with a
confident box on something else."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from echogen_ros.domain.vocabulary import CATEGORIES, PLURALS, vocabulary

_NOUNS = {
    "mug": "cup", "glass": "cup", "beaker": "cup", "tumbler": "cup",
    "dish": "plate", "saucer": "plate", "platter": "plate",
    "basin": "bowl",
    "flask": "bottle",
    "cube": "block", "brick": "block",
    "sphere": "ball",
    "crate": "box", "carton": "box",
}  # fmt: skip
_PLURAL_NOUNS = {"glass": "glasses", "dish": "dishes", "box": "boxes"}
SYNONYMS: dict[str, str] = {
    **_NOUNS,
    **{_PLURAL_NOUNS.get(word, word + "s"): PLURALS[noun] for word, noun in _NOUNS.items()},
    "violet": "purple", "crimson": "red", "scarlet": "red", "navy": "blue",
    "big": "large", "huge": "large", "little": "small", "tiny": "small",
}  # fmt: skip
FILLERS = frozenset({"that", "which", "is", "sits", "lies", "one"})  # "the cup that is left of the plate"
NEAREST_CUTOFF = 0.75  # difflib similarity: "bottel" → "bottle", "cupp" → "cup"; "apple" → nothing
KNOWN = frozenset(vocabulary())
OBJECT_WORDS = frozenset(CATEGORIES) | frozenset(PLURALS.values())
_WORD = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class Reading:
    phrase: str  # as given
    text: str  # in the vocabulary's words: what the model is asked
    unknown: tuple[str, ...] = ()  # words not understood, in order
    nearest: dict[str, str] = field(default_factory=dict)  # unknown word → the nearest known one
    names_object: bool = True  # it names an object the system knows (its head noun is understood)

    @property
    def problem(self) -> str | None:
        """Why the phrase is not grounded, or None when it is."""
        if self.names_object:
            return None
        return f"{self.phrase!r} names no object I know" + (f" ({self.not_understood()})" if self.unknown else "")

    def not_understood(self) -> str:
        """'did not understand "zorp", "bottel" (did you mean "bottle"?)', or '' when every word was understood."""
        said = [f'"{w}"' + (f' (did you mean "{self.nearest[w]}"?)' if w in self.nearest else "") for w in self.unknown]
        return "did not understand " + ", ".join(said) if said else ""


def read(phrase: str) -> Reading:
    words = [SYNONYMS.get(w, w) for w in _WORD.findall(phrase.lower()) if w not in FILLERS]
    unknown = tuple(dict.fromkeys(w for w in words if w not in KNOWN))
    nearest = {w: close[0] for w in unknown if (close := difflib.get_close_matches(w, KNOWN, 1, NEAREST_CUTOFF))}
    return Reading(phrase, " ".join(words), unknown, nearest, any(w in OBJECT_WORDS for w in words))
