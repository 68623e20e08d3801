"""The clauses of a referring phrase that the model's answer checks read. The relation clause: "the cup that is
left of the plate" → its head ("the cup"), the relation ("left of") and the anchor phrases (("the plate",); two
for "between X and Y"); one grammar for the planner's phrases (`planning.phrases`) and the relation check
(`model.relation_check`). The ordinal clause: "the third cup from the left" → what is counted ("the cup"), how
many of them come before it (2) and from which side ("left"), for the ordinal check (`model.ordinal_check`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from echogen_ros.domain.vocabulary import ORDINAL_WORDS

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


ORDINAL = re.compile(rf"^the ({'|'.join(ORDINAL_WORDS[1:])}) (.+) from the (left|right)$")


@dataclass(frozen=True)
class Ordinal:
    head: str  # what is counted: "the cup"
    before: int  # how many of them come before it from `side`: 2 for "the third cup from the left"
    side: str  # "left" or "right"


def ordinal_clause(text: str) -> Ordinal | None:
    """The ordinal of `text` (lower case, single spaces) counted from a side, or None without one ("the leftmost
    cup" needs no count).

    >>> ordinal_clause("the third cup from the left"), ordinal_clause("the leftmost cup")
    (Ordinal(head='the cup', before=2, side='left'), None)
    """
    match = ORDINAL.match(text)
    if match is None:
        return None
    return Ordinal(f"the {match[2]}", ORDINAL_WORDS.index(match[1]), match[3])
