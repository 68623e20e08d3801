"""The ways `EchoGen.parse_scene` lists a frame's objects, by name (torch-free, for the command line):

- "labels" (the default): the grounder asked for every label of the vocabulary (`label_listing`); any model;
- "sequence": the trained one-pass listing, I2L without an expression (`inventory`); a model trained for it.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")

LISTING_METHODS: tuple[str, ...] = ("labels", "sequence")
DEFAULT_LISTING = "labels"


def finish(steps: Generator[None, None, T]) -> T:
    """What a listing made in steps (a generator that yields between them and returns its answer) returns, all
    steps run now."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
