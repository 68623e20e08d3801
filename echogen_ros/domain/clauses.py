"""The relation clause of a referring phrase: "the cup that is left of the plate" → its head ("the cup"), the
relation ("left of") and the anchor phrases (("the plate",); two for "between X and Y"). One grammar for the
planner's phrases (`planning.phrases`) and the model's relation check (`model.relation_check`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

CLAUSE = re.compile(r"\s+(?:that is |which is |that's )?(left of|right of|above|below|next to|on|between)\s+(.+)$")


@dataclass(frozen=True)
class Clause:
    head: str  # the phrase before the relation: "the cup"
    relation: str  # a relation of `domain.relations`: "left of", ..., "between"
    anchors: tuple[str, ...]  # what it is related to: one phrase, two for "between"


def relation_clause(text: str) -> Clause | None:
    """The clause of `text` (lower case, single spaces), or None without one (or "between" without "and").

    >>> relation_clause("the red cup that is left of the blue plate")
    Clause(head='the red cup', relation='left of', anchors=('the blue plate',))
    >>> relation_clause("the ball between the cup and the box").anchors, relation_clause("the cup") is None
    (('the cup', 'the box'), True)
    """
    match = CLAUSE.search(text)
    if match is None:
        return None
    rest = match[2]
    anchors = tuple(rest.split(" and ", 1)) if match[1] == "between" else (rest,)
    if match[1] == "between" and len(anchors) != 2:
        return None
    return Clause(text[: match.start()], match[1], anchors)
