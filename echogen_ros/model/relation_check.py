"""The relation check: a box found for a phrase with a relation clause ("the cup left of the plate") is checked
against that relation, its anchors grounded in the same frame (`finding.relation_failures` grounds them; this
module is the geometry).

Each anchor phrase gives up to ANCHOR_CANDIDATES boxes; the best and those whose raw score reaches ANCHOR_RATIO of
the best's may be the anchor (a rival, as `planning.grounders.AMBIGUITY_RATIO` calls one), and none that is the
checked box itself (IoU ≥ 0.5). The box fails the check when the relation is clearly false (`domain.relations`:
margin ≤ −1, the band the world's expressions stay clear of) with every possible anchor: no cup is left of any
plate there, so "the cup left of the plate" is not this cup. A box that fails gets probability 0 and the reason.

Why: the grounder's probability barely tells a relation nobody satisfies from one that holds (it answers the
cup either way). Measured with the model shipped on 2026-12-06 (the world's test split, seed 0, scenes 0–39;
docs/benchmarks.md, "the relation check"): relation no-target expressions not found 0.60 → 0.95 (40), and of
the answers to relation expressions with a referent none of the 274 right boxes failed the check, 10 of the 11
wrong ones did. Anchors were first chosen by calibrated probability (≥ 0.05); raw scores replaced it so that the
check decides the same whatever the calibration (`finding.CHECKS`): on test (seed 0, scenes 0–149, 1,201
relational expressions) a raw-score ratio of 0.5 fails exactly the answers the probability did (relations nobody
satisfies not found 0.960 of 149; 0 of 1,014 right answers failed, 32 of 38 wrong ones), 0.3 gives 0.946 / 0 / 31
and 0.1 gives 0.919 / 0 / 22.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from echogen_ros.domain.clauses import Clause
from echogen_ros.domain.relations import relation_margin
from echogen_ros.model.layout import DISTINCT_IOU, box_iou

Box = Sequence[float]

CLEARLY_FALSE = -1.0  # `domain.relations`: a margin at or below it is clearly false
ANCHOR_CANDIDATES = 3  # boxes asked of each anchor phrase (`finding.relation_failures`)
ANCHOR_RATIO = 0.5  # an anchor candidate whose raw score is below this fraction of the best's is not the anchor


def failures(clause: Clause, boxes: Sequence[Box], anchors: Sequence[Sequence[Box]], height: float) -> list[str]:
    """For each of `boxes` (found for a phrase with `clause`), "" where its relation may hold with some choice of
    `anchors` (per anchor phrase, the boxes that may be it), else why it does not. `height`: the frame's, in the
    boxes' pixels.

    >>> clause = Clause("the cup", "left of", ("the plate",))
    >>> failures(clause, [(0, 0, 10, 10), (200, 0, 210, 10)], [[(100, 0, 150, 10)]], 480)
    ['', "'the cup' found is not left of 'the plate' (relation check)"]
    """
    named = " and ".join(repr(a) for a in clause.anchors)
    out = []
    for box in boxes:
        margins = [relation_margin(clause.relation, box, list(combo), height)
                   for combo in itertools.product(*anchors)
                   if all(box_iou(box, anchor) < DISTINCT_IOU for anchor in combo)]  # fmt: skip
        clear = not margins or max(margins) <= CLEARLY_FALSE
        out.append(f"{clause.head!r} found is not {clause.relation} {named} (relation check)" if clear else "")
    return out
