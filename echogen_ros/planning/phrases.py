"""Referring phrases resolved against known objects (ground truth, a simulator, or a world scene).

Grammar (the tabletop world's, plus common variants): "the [largest|smaller|leftmost|...] [colour]
category [from the left|right] [that is] [left of|right of|above|below|next to|on NP | between NP and NP]".
Used when boxes are known, so the planner can be tested and run without a trained model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from echogen_ros.domain import vocabulary
from echogen_ros.domain.clauses import CLAUSE
from echogen_ros.domain.relations import relation_margin

Box = tuple[float, float, float, float]
SUPERLATIVES = {"largest": 1, "larger": 1, "biggest": 1, "bigger": 1, "smallest": -1, "smaller": -1}
EXTREMES = {"leftmost": (0, 1), "rightmost": (0, -1), "topmost": (1, 1), "bottommost": (1, -1)}
SIZE_WORDS = {"big": "large", "large": "large", "small": "small", "little": "small"}
ORDINALS = {w: i for i, w in enumerate(vocabulary.ORDINAL_WORDS)}


@dataclass(frozen=True)
class KnownObject:
    category: str
    box: Box
    colour: str | None = None
    size: str | None = None  # "small" | "large"


def _head(words: list[str]) -> int | None:
    for i, word in enumerate(words):
        singular = next((c for c, plural in vocabulary.PLURALS.items() if word in (c, plural)), None)
        if singular is not None:
            return i
    return None


def resolve(phrase: str, objects: Sequence[KnownObject], scale: float) -> list[int]:
    """Indices of the objects `phrase` names (possibly several: the caller reports ambiguity)."""
    text = re.sub(r"\s+", " ", phrase.lower().strip())
    clause = CLAUSE.search(text)
    core = text[: clause.start()] if clause else text
    words = [w for w in core.split() if w not in ("the", "a", "an", "one")]
    head = _head(words)
    if head is None:
        return []
    category = next(c for c, p in vocabulary.PLURALS.items() if words[head] in (c, p))
    modifiers, tail = words[:head], words[head + 1 :]
    found = [i for i, o in enumerate(objects) if o.category == category]
    for word in modifiers:
        if word in vocabulary.COLOURS:
            found = [i for i in found if objects[i].colour == word]
        elif word in SIZE_WORDS:
            found = [i for i in found if objects[i].size in (None, SIZE_WORDS[word])]
    if clause:
        found = _filter_relation(found, clause[1], clause[2], objects, scale)
    for word in modifiers:
        if word in SUPERLATIVES:
            found = _extreme(
                found, objects, lambda o: (o.box[2] - o.box[0]) * (o.box[3] - o.box[1]), SUPERLATIVES[word]
            )
        elif word in EXTREMES:
            axis, sign = EXTREMES[word]
            found = _extreme(found, objects, lambda o, a=axis: -(o.box[a] + o.box[a + 2]) / 2, sign)
        elif word in ORDINALS and tail[-1:] in (["left"], ["right"]):  # "second cup from the left"
            side = 1 if tail[-1] == "left" else -1
            ranked = sorted(found, key=lambda i: side * (objects[i].box[0] + objects[i].box[2]))
            found = [ranked[ORDINALS[word]]] if len(ranked) > ORDINALS[word] else []
    return found


def _extreme(found: list[int], objects: Sequence[KnownObject], key, sign: int) -> list[int]:
    if not found:
        return []
    best = max(sign * key(objects[i]) for i in found)
    return [i for i in found if sign * key(objects[i]) == best]


def _filter_relation(found: list[int], relation: str, rest: str, objects, scale: float) -> list[int]:
    if relation == "between":
        parts = rest.split(" and ", 1)
        if len(parts) != 2:
            return []
        anchors = [resolve(p, objects, scale) for p in parts]
    else:
        anchors = [resolve(rest, objects, scale)]
    if any(len(a) != 1 for a in anchors):
        return []
    ids = [a[0] for a in anchors]
    boxes = [objects[j].box for j in ids]
    return [i for i in found if i not in ids and relation_margin(relation, objects[i].box, boxes, scale) > 0]
