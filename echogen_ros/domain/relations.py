"""Spatial relations between boxes as normalised margins: ≥ 1 clearly true, ≤ −1 clearly false.

One definition serves the world (which only emits expressions whose relations are clear), the planner
(which places goal boxes so a relation holds) and verification (satisfied / not / cannot tell, with a
score). Boxes are (x1, y1, x2, y2) in image pixels, y down; `scale` is the image height in pixels, so
the margins mean the same at every resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum

from echogen_ros.domain.vocabulary import INSTRUCTION_RELATIONS

Box = Sequence[float]

MARGIN = 0.012  # clear-decision band of the edge relations, as a fraction of the image height
NEAR = 0.12  # "next to": a gap of at most this (fraction of image height) is near; twice it is far
BETWEEN_SPAN = 0.2  # "between": the centre projects inside [0.2, 0.8] of the anchor segment
BETWEEN_OFFSET = 0.3  # "between": at most this far from the segment (fraction of its length)
RELATIONS = INSTRUCTION_RELATIONS  # the relation words are the ones this module defines


class Truth(Enum):
    TRUE = "true"
    FALSE = "false"
    UNCLEAR = "unclear"


def center(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    """Length of the overlap of [a0, a1] and [b0, b1]; negative: the gap between them."""
    return min(a1, b1) - max(a0, b0)


def box_gap(a: Box, b: Box) -> float:
    """Euclidean distance between the two boxes (0 when they touch or overlap)."""
    dx = max(b[0] - a[2], a[0] - b[2], 0.0)
    dy = max(b[1] - a[3], a[1] - b[3], 0.0)
    return math.hypot(dx, dy)


def _left_of(a: Box, b: Box, scale: float) -> float:
    """a entirely left of b, in the same horizontal band."""
    return min(b[0] - a[2], _overlap(a[1], a[3], b[1], b[3])) / (MARGIN * scale)


def _above(a: Box, b: Box, scale: float) -> float:
    """a entirely above b in the image, in the same vertical band."""
    return min(b[1] - a[3], _overlap(a[0], a[2], b[0], b[2])) / (MARGIN * scale)


def _next_to(a: Box, b: Box, scale: float) -> float:
    near = NEAR * scale
    return (1.5 * near - box_gap(a, b)) / (0.5 * near)


def _between(a: Box, b: Box, c: Box) -> float:
    (ax, ay), (bx, by), (cx, cy) = center(a), center(b), center(c)
    dx, dy = cx - bx, cy - by
    length = math.hypot(dx, dy)
    if length < 1e-6:
        return -math.inf
    t = ((ax - bx) * dx + (ay - by) * dy) / (length * length)
    offset = abs((ax - bx) * dy - (ay - by) * dx) / (length * length)
    along = (min(t, 1.0 - t) - BETWEEN_SPAN / 2) / (BETWEEN_SPAN / 2)
    near_line = (1.5 * BETWEEN_OFFSET - offset) / (0.5 * BETWEEN_OFFSET)
    return min(along, near_line)


def _on(a: Box, b: Box, scale: float) -> float:
    """a rests on b: a's centre well inside b (support surfaces: plates, boxes)."""
    ax, ay = center(a)
    return min(ax - b[0], b[2] - ax, ay - b[1], b[3] - ay) / (MARGIN * scale)


def relation_margin(relation: str, target: Box, anchors: Sequence[Box], scale: float) -> float:
    """How clearly `relation` holds of `target` and its anchors: ≥ 1 clearly, ≤ −1 clearly not."""
    expected = 2 if relation == "between" else 1
    if relation not in RELATIONS:
        raise ValueError(f"unknown relation {relation!r}; known: {', '.join(RELATIONS)}")
    if len(anchors) != expected:
        raise ValueError(f"{relation!r} needs {expected} anchor(s), got {len(anchors)}")
    a = anchors[0]
    if relation == "left of":
        return _left_of(target, a, scale)
    if relation == "right of":
        return _left_of(a, target, scale)
    if relation == "above":
        return _above(target, a, scale)
    if relation == "below":
        return _above(a, target, scale)
    if relation == "next to":
        return _next_to(target, a, scale)
    if relation == "on":
        return _on(target, a, scale)
    return _between(target, a, anchors[1])


def relation_truth(relation: str, target: Box, anchors: Sequence[Box], scale: float) -> Truth:
    """Evaluate `relation` ("left of", ..., "between", "on") of `target` to its anchor boxes."""
    margin = relation_margin(relation, target, anchors, scale)
    if margin >= 1.0:
        return Truth.TRUE
    if margin <= -1.0:
        return Truth.FALSE
    return Truth.UNCLEAR


def relation_score(margin: float) -> float:
    """A 0..1 confidence from a normalised margin (0.5 on the boundary, 0.88 at the clear band)."""
    return 1.0 / (1.0 + math.exp(-2.0 * max(min(margin, 50.0), -50.0)))
