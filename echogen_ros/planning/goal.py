"""Placing the target's goal box so that the commanded relation holds.

Candidates are laid out around the anchor(s) with a clear margin; each must keep the relation clearly
true, stay inside the image, keep the target's size (capped to a plausible share of the image), and
not overlap any other object. The candidate closest to the target's current place wins (least motion).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from echogen_ros.domain.relations import MARGIN, NEAR, center, relation_margin
from echogen_ros.planning.commands import PlanningError

Box = tuple[float, float, float, float]
MAX_SHARE = 0.5  # a goal box is at most half the image in each dimension
CLEAR = 2.0  # required normalised margin of the relation (1 = just clear)


def _size(box: Box, width: int, height: int) -> tuple[float, float]:
    return min(box[2] - box[0], MAX_SHARE * width), min(box[3] - box[1], MAX_SHARE * height)


def _at(cx: float, cy: float, w: float, h: float) -> Box:
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def _grid(lo: float, hi: float, count: int) -> list[float]:
    """`count` values from the middle of [lo, hi] outwards (the middle first)."""
    if hi <= lo:
        return [(lo + hi) / 2]
    values = [lo + (hi - lo) * k / (count - 1) for k in range(count)]
    mid = (lo + hi) / 2
    return sorted(values, key=lambda v: abs(v - mid))


def _candidates(relation: str, anchors: Sequence[Box], w: float, h: float, height: int) -> list[Box]:
    m = MARGIN * height
    a = anchors[0]
    (ax, ay) = center(a)
    gaps = [4 * m, 8 * m, 14 * m, 22 * m, 32 * m, 45 * m]
    band = 4 * m  # keep this much overlap with the anchor's band
    out: list[Box] = []
    if relation in ("left of", "right of"):
        for gap in gaps:
            cx = (a[0] - gap - w / 2) if relation == "left of" else (a[2] + gap + w / 2)
            out += [_at(cx, cy, w, h) for cy in _grid(a[1] - h / 2 + band, a[3] + h / 2 - band, 9)]
    elif relation in ("above", "below"):
        for gap in gaps:
            cy = (a[1] - gap - h / 2) if relation == "above" else (a[3] + gap + h / 2)
            out += [_at(cx, cy, w, h) for cx in _grid(a[0] - w / 2 + band, a[2] + w / 2 - band, 9)]
    elif relation == "next to":
        for gap in (0.25 * NEAR * height, 0.5 * NEAR * height, 0.8 * NEAR * height):
            for cy in _grid(a[1] - h / 2, a[3] + h / 2, 7):
                out += [_at(a[0] - gap - w / 2, cy, w, h), _at(a[2] + gap + w / 2, cy, w, h)]
            for cx in _grid(a[0] - w / 2, a[2] + w / 2, 7):
                out += [_at(cx, a[1] - gap - h / 2, w, h), _at(cx, a[3] + gap + h / 2, w, h)]
    elif relation == "between":
        (bx, by) = center(anchors[1])
        length = math.hypot(bx - ax, by - ay)
        nx, ny = (-(by - ay) / length, (bx - ax) / length) if length else (0.0, 0.0)
        for t in _grid(0.25, 0.75, 11):
            px, py = ax + t * (bx - ax), ay + t * (by - ay)
            out += [_at(px + o * length * nx, py + o * length * ny, w, h) for o in _grid(-0.25, 0.25, 5)]
    elif relation == "on":
        ow, oh = min(w, 0.8 * (a[2] - a[0])), min(h, 0.8 * (a[3] - a[1]))  # what is on a plate fits on it
        out += [_at(ax, ay, ow, oh)]
    else:
        raise PlanningError(f"no goal placement for relation {relation!r}")
    return out


def _overlaps(a: Box, b: Box, clearance: float) -> bool:
    return a[0] < b[2] + clearance and b[0] < a[2] + clearance and a[1] < b[3] + clearance and b[1] < a[3] + clearance


def place_goal(
    relation: str,
    target: Box,
    anchors: Sequence[Box],
    obstacles: Sequence[Box],
    width: int,
    height: int,
) -> Box:
    """The target's goal box; PlanningError when no free place satisfies the relation."""
    w, h = _size(target, width, height)
    clearance = MARGIN * height
    edge = clearance
    tx, ty = center(target)
    valid = []
    for box in _candidates(relation, anchors, w, h, height):
        if box[0] < edge or box[1] < edge or box[2] > width - edge or box[3] > height - edge:
            continue
        blocking = [o for o in obstacles if not (relation == "on" and o == anchors[0])]
        if relation != "on" and any(_overlaps(box, a, clearance) for a in anchors):
            continue
        if any(_overlaps(box, o, clearance) for o in blocking):
            continue
        if relation_margin(relation, box, anchors, height) < CLEAR:
            continue
        cx, cy = center(box)
        valid.append((math.hypot(cx - tx, cy - ty), box))
    if valid:
        return min(valid)[1]
    found = _search(relation, (w, h), (tx, ty), anchors, obstacles, width, height)
    if found is None:
        raise PlanningError(
            f"no free place {relation} the anchor(s) inside the image without overlapping other objects"
        )
    return found


def _search(relation, size, origin, anchors, obstacles, width: int, height: int) -> Box | None:
    """Exhaustive fallback: every position on a grid of height/240 px (2 px at 480), nearest to `origin` first."""
    w, h = size
    clearance = MARGIN * height
    step = max(1.0, height / 240)
    xs, ys = np.meshgrid(
        np.arange(clearance, width - clearance - w, step), np.arange(clearance, height - clearance - h, step)
    )
    x1, y1 = xs.ravel(), ys.ravel()
    free = np.ones(x1.shape, dtype=bool)
    blocking = [o for o in obstacles if not (relation == "on" and o == anchors[0])]
    for o in blocking + ([] if relation == "on" else list(anchors)):
        free &= ~(
            (x1 < o[2] + clearance)
            & (o[0] < x1 + w + clearance)
            & (y1 < o[3] + clearance)
            & (o[1] < y1 + h + clearance)
        )
    x1, y1 = x1[free], y1[free]
    order = np.argsort(np.hypot(x1 + w / 2 - origin[0], y1 + h / 2 - origin[1]))
    for k in order:
        box = (float(x1[k]), float(y1[k]), float(x1[k] + w), float(y1[k] + h))
        if relation_margin(relation, box, anchors, height) >= CLEAR:
            return box
    return None
