"""The words the system understands: object categories and their plurals, colours, sizes, tables,
relations, ordinals, numbers, verbs, and every function word of captions, expressions and instructions.
The world draws what these words name (world/catalog.py gives each its look); the model's word-level
tokenizer is built from `vocabulary()`."""

from __future__ import annotations

# Object categories. COCO-style ids are 1-based in this order; the order is part of the dataset format,
# append only.
CATEGORIES: tuple[str, ...] = ("cup", "plate", "bowl", "bottle", "block", "ball", "box", "banana")
PLURALS: dict[str, str] = {name: name + ("es" if name.endswith("x") else "s") for name in CATEGORIES}
# Objects other objects can be put "on" (instructions only; scenes never stack objects).
SUPPORT_CATEGORIES: tuple[str, ...] = ("plate", "box")
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "orange", "purple", "white")
SIZES: tuple[str, ...] = ("small", "large")
TABLES: tuple[str, ...] = ("wooden", "dark", "grey", "slate")

# Relations the world speaks about, as they appear in text.
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below", "next to", "between")
INSTRUCTION_RELATIONS: tuple[str, ...] = RELATIONS + ("on",)

ORDINAL_WORDS: tuple[str, ...] = ("first", "second", "third", "fourth")
NUMBER_WORDS: tuple[str, ...] = ("a", "two", "three", "four", "five", "six", "seven", "eight")
INSTRUCTION_VERBS: tuple[str, ...] = ("put", "place", "move")

# Every word the world's texts use beyond the names above (kept in one place so a word-level
# tokenizer can be built from `vocabulary()` without scanning generated data).
_FUNCTION_WORDS: tuple[str, ...] = (
    "the",
    "a",
    "an",
    "and",
    "with",
    "table",
    "of",
    "to",
    "from",
    "at",
    "on",
    "up",
    "pick",
    "left",
    "right",
    "above",
    "below",
    "next",
    "between",
    "leftmost",
    "rightmost",
    "topmost",
    "bottommost",
    "larger",
    "smaller",
    "largest",
    "smallest",
    ",",
    ".",
)


def vocabulary() -> list[str]:
    """Every word (and punctuation mark) that captions, expressions and instructions can contain."""
    words = set(_FUNCTION_WORDS) | set(ORDINAL_WORDS) | set(NUMBER_WORDS) | set(INSTRUCTION_VERBS)
    words |= set(CATEGORIES) | set(PLURALS.values()) | set(COLOURS) | set(SIZES) | set(TABLES)
    return sorted(words)
