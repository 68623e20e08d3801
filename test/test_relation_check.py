"""The relation check's grammar and geometry on hand-made boxes: a phrase's relation clause, a box that fails only
when the relation is clearly false with every box its anchor may be, never with the box itself as its anchor.
On the embedded model: test_default_model.py (relations no object satisfies are not found)."""

from __future__ import annotations

from echogen_ros.domain.clauses import Clause, relation_clause
from echogen_ros.model.relation_check import failures

LEFT = Clause("the cup", "left of", ("the plate",))
PLATE = (300, 200, 400, 260)


def test_a_phrase_gives_its_head_relation_and_anchors() -> None:
    assert relation_clause("the red cup that is left of the blue plate") == Clause(
        "the red cup", "left of", ("the blue plate",)
    )
    assert relation_clause("the ball between the cup and the box") == Clause(
        "the ball", "between", ("the cup", "the box")
    )
    assert relation_clause("the second cup from the left") is None
    assert relation_clause("the ball between the cup") is None  # "between" needs two anchors


def test_a_box_fails_only_where_the_relation_is_clearly_false_with_every_anchor() -> None:
    left, right, touching = (100, 200, 150, 260), (500, 200, 550, 260), (250, 200, 302, 260)
    said = failures(LEFT, [left, right, touching], [[PLATE]], 480)
    assert said[0] == "" and said[2] == ""  # clearly left; at the plate's edge: unclear, not failed
    assert said[1] == "'the cup' found is not left of 'the plate' (relation check)"
    other_plate = (560, 200, 620, 260)  # the anchor may be either plate: right of one, left of the other
    assert failures(LEFT, [right], [[PLATE, other_plate]], 480) == [""]


def test_the_checked_box_is_never_its_own_anchor_and_between_takes_two() -> None:
    cup = (100, 200, 150, 260)
    assert failures(LEFT, [cup], [[cup, PLATE]], 480) == [""]  # the plate, not the cup itself
    assert failures(LEFT, [cup], [[cup]], 480)[0].endswith("(relation check)")  # no anchor but itself
    between = Clause("the ball", "between", ("the cup", "the box"))
    inside, outside = (240, 210, 260, 250), (40, 210, 60, 250)
    anchors = [[(100, 200, 150, 260)], [(350, 200, 400, 260)]]
    assert failures(between, [inside, outside], anchors, 480)[0] == ""
    assert failures(between, [inside, outside], anchors, 480)[1] != ""
