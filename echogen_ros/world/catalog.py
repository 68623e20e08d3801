"""What the tabletop world contains: categories, colours, sizes, tables, and the held-out compositions.

Everything here is data. Geometry is in *reference pixels* of a 640×480 frame; scenes render at any
resolution by scaling, so the same seed gives the same scene (and the same annotations) at every size.
"""

from __future__ import annotations

REF_WIDTH = 640
REF_HEIGHT = 480

# Category name → (width, height) of a small instance in reference pixels. COCO-style ids are 1-based
# in this order; the order is part of the dataset format, append only.
CATEGORY_EXTENTS: dict[str, tuple[float, float]] = {
    "cup": (56.0, 62.0),
    "plate": (104.0, 60.0),
    "bowl": (86.0, 52.0),
    "bottle": (34.0, 96.0),
    "block": (50.0, 50.0),
    "ball": (44.0, 44.0),
    "box": (78.0, 58.0),
    "banana": (82.0, 38.0),
}
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_EXTENTS)
CATEGORY_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate(CATEGORIES)}
PLURALS: dict[str, str] = {name: name + ("es" if name.endswith("x") else "s") for name in CATEGORIES}
# Objects other objects can be put "on" (instructions only; scenes never stack objects).
SUPPORT_CATEGORIES: tuple[str, ...] = ("plate", "box")

# Colour name → RGB.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (205, 38, 38),
    "green": (46, 150, 62),
    "blue": (38, 78, 200),
    "yellow": (236, 204, 40),
    "orange": (240, 128, 28),
    "purple": (128, 58, 168),
    "white": (238, 238, 232),
}

# Size class → scale applied to the category extent.
SIZES: dict[str, float] = {"small": 1.0, "large": 1.45}

# Table name → base RGB of its surface.
TABLES: dict[str, tuple[int, int, int]] = {
    "wooden": (150, 108, 70),
    "dark": (92, 66, 46),
    "grey": (118, 118, 124),
    "slate": (72, 84, 98),
}

# Relations the world speaks about, as they appear in text.
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below", "next to", "between")
INSTRUCTION_RELATIONS: tuple[str, ...] = RELATIONS + ("on",)

# Compositions held out of the train split. Each colour and each category appears at most once, so
# every word is still seen in training; only these combinations are new at test time.
HELDOUT_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {
        ("red", "ball"),
        ("blue", "cup"),
        ("green", "bottle"),
        ("yellow", "block"),
        ("purple", "plate"),
        ("orange", "box"),
        ("white", "bowl"),
        ("green", "banana"),
    }
)
# (relation, target category) pairs held out of the train split's expressions and instructions.
HELDOUT_RELATIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("left of", "bottle"),
        ("right of", "ball"),
        ("above", "cup"),
        ("below", "box"),
        ("next to", "block"),
        ("between", "bowl"),
    }
)

SPLITS: tuple[str, ...] = ("train", "val", "test", "heldout")
EXPRESSION_TYPES: tuple[str, ...] = ("category", "attribute", "size", "ordinal", "relation")

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


def is_heldout_pair(colour: str, category: str) -> bool:
    return (colour, category) in HELDOUT_PAIRS
