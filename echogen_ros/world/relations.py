"""Spatial relations between boxes, three-valued: clearly true, clearly false, or too close to call.

One definition serves the world (which only emits expressions whose relations are clear), the planner
(which places goal boxes so a relation holds) and verification (satisfied / not / cannot tell).
Boxes are (x1, y1, x2, y2) in image pixels, y down; `scale` is the image height in pixels, so the
margins mean the same at every resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum

Box = Sequence[float]

MARGIN = 0.012  # clear-decision band, as a fraction of the image height
NEAR = 0.12  # "next to": gap at most this (fraction of image height) is near; twice it is far
BETWEEN_SPAN = (0.2, 0.8)  # "between": projection onto the anchor segment, clear interval
BETWEEN_OFFSET = 0.3  # "between": distance from the segment, as a fraction of its length


class Truth(Enum):
    TRUE = "true"
    FALSE = "false"
    UNCLEAR = "unclear"


def _decide(value: float, lo: float, hi: float) -> Truth:
    """TRUE when value >= hi, FALSE when value <= lo, UNCLEAR in between."""
    if value >= hi:
        return Truth.TRUE
    if value <= lo:
        return Truth.FALSE
    return Truth.UNCLEAR


def _both(a: Truth, b: Truth) -> Truth:
    if Truth.FALSE in (a, b):
        return Truth.FALSE
    if Truth.UNCLEAR in (a, b):
        return Truth.UNCLEAR
    return Truth.TRUE


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    """Length of the overlap of [a0, a1] and [b0, b1]; negative is the gap between them."""
    return min(a1, b1) - max(a0, b0)


def left_of(a: Box, b: Box, scale: float) -> Truth:
    """`a` is left of `b`: entirely to its left, in the same horizontal band."""
    m = MARGIN * scale
    gap = _decide(b[0] - a[2], -m, m)
    band = _decide(_overlap(a[1], a[3], b[1], b[3]), -m, m)
    return _both(gap, band)


def right_of(a: Box, b: Box, scale: float) -> Truth:
    return left_of(b, a, scale)


def above(a: Box, b: Box, scale: float) -> Truth:
    """`a` is above `b` in the image: entirely higher, in the same vertical band."""
    m = MARGIN * scale
    gap = _decide(b[1] - a[3], -m, m)
    band = _decide(_overlap(a[0], a[2], b[0], b[2]), -m, m)
    return _both(gap, band)


def below(a: Box, b: Box, scale: float) -> Truth:
    return above(b, a, scale)


def box_gap(a: Box, b: Box) -> float:
    """Euclidean distance between the two boxes (0 when they touch or overlap)."""
    dx = max(b[0] - a[2], a[0] - b[2], 0.0)
    dy = max(b[1] - a[3], a[1] - b[3], 0.0)
    return math.hypot(dx, dy)


def next_to(a: Box, b: Box, scale: float) -> Truth:
    near = NEAR * scale
    return _decide(-box_gap(a, b), -2.0 * near, -near)


def between(a: Box, b: Box, c: Box, scale: float) -> Truth:
    """`a`'s centre lies on the stretch between the centres of `b` and `c`, close to that line."""
    (ax, ay), (bx, by), (cx, cy) = center(a), center(b), center(c)
    dx, dy = cx - bx, cy - by
    length = math.hypot(dx, dy)
    if length < 1e-6:
        return Truth.FALSE
    t = ((ax - bx) * dx + (ay - by) * dy) / (length * length)
    offset = abs((ax - bx) * dy - (ay - by) * dx) / length / length
    lo, hi = BETWEEN_SPAN
    along = _both(_decide(t, 0.0, lo), _decide(1.0 - t, 0.0, 1.0 - hi))
    near_line = _decide(-offset, -2.0 * BETWEEN_OFFSET, -BETWEEN_OFFSET)
    return _both(along, near_line)


def on(a: Box, b: Box, scale: float) -> Truth:
    """`a` rests on `b`: `a`'s centre is well inside `b` (support surfaces: plates, boxes)."""
    m = MARGIN * scale
    ax, ay = center(a)
    inside = min(ax - b[0], b[2] - ax, ay - b[1], b[3] - ay)
    return _decide(inside, -m, m)


def center(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


BINARY = {"left of": left_of, "right of": right_of, "above": above, "below": below, "next to": next_to, "on": on}


def relation_truth(relation: str, target: Box, anchors: Sequence[Box], scale: float) -> Truth:
    """Evaluate `relation` ("left of", ..., "between") of `target` to its anchor boxes."""
    if relation == "between":
        if len(anchors) != 2:
            raise ValueError(f"'between' needs two anchors, got {len(anchors)}")
        return between(target, anchors[0], anchors[1], scale)
    if relation not in BINARY:
        raise ValueError(f"unknown relation {relation!r}; known: {sorted(BINARY) + ['between']}")
    if len(anchors) != 1:
        raise ValueError(f"{relation!r} needs one anchor, got {len(anchors)}")
    return BINARY[relation](target, anchors[0], scale)
