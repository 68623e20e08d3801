"""How the tabletop world looks: each category's extent, each colour's and table's RGB, each size's scale,
and the held-out compositions. The words themselves are the domain's (echogen_ros.domain.vocabulary,
re-exported here for the world's code); every word gets its look here, checked at import.

Everything here is data. Geometry is in *reference pixels* of a 640×480 frame; scenes render at any
resolution by scaling, so the same seed gives the same scene (and the same annotations) at every size.
"""

from __future__ import annotations

from echogen_ros.domain import vocabulary as words
from echogen_ros.domain.vocabulary import (  # noqa: F401 - the world's code reads the words from here
    CATEGORIES,
    INSTRUCTION_RELATIONS,
    INSTRUCTION_VERBS,
    NUMBER_WORDS,
    ORDINAL_WORDS,
    PLURALS,
    RELATIONS,
    SUPPORT_CATEGORIES,
    vocabulary,
)

REF_WIDTH = 640
REF_HEIGHT = 480

# Category name → (width, height) of a small instance in reference pixels.
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
CATEGORY_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate(CATEGORIES)}

# The camera (world/camera.py): a pinhole looking straight down at the table from this height, with this focal
# length in reference pixels (a 640 px wide frame sees 0.8 m of table, 53° horizontally).
CAMERA_HEIGHT_M = 0.8
REF_FOCAL = 640.0

# Category name → height in metres of a small instance (objects scale with their size, heights too). A bottle
# and a banana lie on the table; each object's top face is its drawn shape, at this height.
CATEGORY_HEIGHTS: dict[str, float] = {
    "cup": 0.09,
    "plate": 0.02,
    "bowl": 0.05,
    "bottle": 0.04,
    "block": 0.06,
    "ball": 0.05,
    "box": 0.07,
    "banana": 0.035,
}

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

for _looks, _words in ((CATEGORY_EXTENTS, words.CATEGORIES), (CATEGORY_HEIGHTS, words.CATEGORIES),
                       (COLOURS, words.COLOURS), (SIZES, words.SIZES), (TABLES, words.TABLES)):  # fmt: skip
    if tuple(_looks) != _words:
        raise ImportError(f"world/catalog.py gives looks to {tuple(_looks)}, the vocabulary names {_words}")

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


def is_heldout_pair(colour: str, category: str) -> bool:
    return (colour, category) in HELDOUT_PAIRS
