"""The ordinal check's grammar and counting on hand-made boxes: an ordinal counted from a side, a box that fails
only where too few of its category lie on that side, each object counted once and never the box itself, and an
object another category of its colour outscores is not counted. On the
embedded model: test_default_model.py (ordinals beyond the count are not found)."""

from __future__ import annotations

from echogen_ros.domain.clauses import Ordinal, ordinal_clause, relation_clause
from echogen_ros.model.layout import Detection
from echogen_ros.model.ordinal_check import counted_phrases, failures, not_outscored, rival_phrases

THIRD_LEFT = Ordinal("the cup", 2, "left")
CUPS = [(0, 100, 40, 140), (100, 100, 140, 140), (200, 100, 240, 140)]  # left to right


def found(*boxes) -> list[Detection]:
    """Boxes as the colours' best detections."""
    return [Detection(box, 0.9, "cup") for box in boxes]


def test_a_phrase_gives_what_is_counted_how_many_and_from_where() -> None:
    assert ordinal_clause("the third cup from the left") == THIRD_LEFT
    assert ordinal_clause("the second plate from the right") == Ordinal("the plate", 1, "right")
    assert ordinal_clause("the fourth red block from the left") == Ordinal("the red block", 3, "left")
    for uncounted in ("the leftmost cup", "the first cup from the left", "the cup left of the plate", "the cup"):
        assert ordinal_clause(uncounted) is None, uncounted
    assert relation_clause("the third cup from the left") is None  # one clause, one check


def test_a_bare_category_is_counted_in_every_colour_and_anything_more_is_not() -> None:
    phrases = counted_phrases(THIRD_LEFT)
    assert phrases[0] == "the red cup" and len(phrases) == 7 and all(p.endswith(" cup") for p in phrases)
    assert counted_phrases(Ordinal("the red cup", 1, "left")) == []  # two red cups answer "the red cup" once


def test_a_box_fails_only_with_too_few_of_its_category_on_the_named_side() -> None:
    said = failures("the third cup from the left", THIRD_LEFT, [CUPS[2], CUPS[1], CUPS[0]], found(*CUPS))
    assert said[0] == ""  # two cups left of the third
    assert said[1] == "'the third cup from the left' found has 1 of 'the cup' on its left, not 2 (ordinal check)"
    assert said[2].endswith("has 0 of 'the cup' on its left, not 2 (ordinal check)")
    second_right = Ordinal("the cup", 1, "right")
    assert failures("the second cup from the right", second_right, [CUPS[1], CUPS[2]], found(*CUPS))[0] == ""
    assert failures("the second cup from the right", second_right, [CUPS[2]], found(*CUPS))[0].endswith(
        "not 1 (ordinal check)"
    )


def test_each_object_counts_once_and_the_box_never_counts_itself() -> None:
    def third(counted):
        return failures("the third cup from the left", THIRD_LEFT, [CUPS[2]], found(*counted))[0]

    twice = [CUPS[0], (2, 101, 41, 140)]  # two colours' best boxes on one cup: one cup
    assert third(twice).endswith("has 1 of 'the cup' on its left, not 2 (ordinal check)")
    itself = (198, 100, 240, 141)  # the checked box, answered under another colour too
    assert third([CUPS[0], itself]) != "" and third([CUPS[0], CUPS[1], itself]) == ""
    assert third([]).endswith("has 0 of 'the cup' on its left, not 2 (ordinal check)")


def test_an_object_that_a_rival_of_its_colour_outscores_is_not_counted() -> None:
    counted = [Detection(CUPS[0], 0.6, "the orange cup"), Detection(CUPS[1], 0.7, "the white cup")]
    rivals = rival_phrases(counted)
    assert len(rivals) == 14 and "the orange block" in rivals and "the white ball" in rivals
    assert "the orange cup" not in rivals and "the red block" not in rivals  # its own label; another colour
    block = Detection((2, 101, 41, 140), 0.95, "the orange block")  # the orange "cup" is an orange block
    assert not_outscored(counted, [block]) == counted[1:]
    assert not_outscored(counted, [Detection(block.box, 0.85, block.label)]) == counted  # not 1.5 × the cup's
    assert not_outscored(counted, [Detection(block.box, 0.95, "the white block")]) == counted  # not its colour
    assert not_outscored(counted, [Detection(CUPS[2], 0.95, "the orange block")]) == counted  # another object
    assert third_with_rivals(counted, [block]).endswith("has 1 of 'the cup' on its left, not 2 (ordinal check)")
    assert third_with_rivals(counted, []) == ""


def third_with_rivals(counted: list[Detection], rivals: list[Detection]) -> str:
    return failures("the third cup from the left", THIRD_LEFT, [CUPS[2]], not_outscored(counted, rivals))[0]
