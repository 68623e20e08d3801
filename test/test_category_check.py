"""The category check on hand-made boxes: only a bare category is checked, against every other category; a box
fails only where a rival lands on it with RIVAL_RATIO × the phrase's raw score or more, and the reason names the
rival. On the embedded model: test_default_model.py (a category the scene lacks is not found)."""

from __future__ import annotations

from echogen_ros.domain.vocabulary import CATEGORIES
from echogen_ros.model.category_check import RIVAL_RATIO, checked_category, failures, rival_phrases
from echogen_ros.model.layout import Detection

CUP = Detection((100, 100, 140, 140), 0.40, "the cup")
ELSEWHERE = (300, 100, 340, 140)


def test_only_a_bare_category_is_checked_and_every_other_category_is_its_rival() -> None:
    assert checked_category("the cup") == "cup"
    for more in ("the red cup", "the cup left of the plate", "the second cup from the left", "the large cup", "cup"):
        assert checked_category(more) is None, more
    rivals = rival_phrases("cup")
    assert len(rivals) == len(CATEGORIES) - 1 and "the cup" not in rivals and "the bowl" in rivals


def test_a_box_fails_only_where_a_rival_on_it_scores_enough_more() -> None:
    bowl_on_it = Detection((102, 100, 140, 141), RIVAL_RATIO * CUP.score, "the bowl")
    said = failures(CUP, [CUP.box, ELSEWHERE], [bowl_on_it])
    assert said == ["'the cup' found is more 'the bowl' (raw score 0.48 against 0.40; category check)", ""]
    barely_less = Detection(bowl_on_it.box, RIVAL_RATIO * CUP.score - 0.01, "the bowl")
    assert failures(CUP, [CUP.box], [barely_less]) == [""]  # more, but not by RIVAL_RATIO
    beside = Detection((150, 100, 190, 140), 0.9, "the plate")  # a better plate next to it: not this box
    assert failures(CUP, [CUP.box], [beside]) == [""]


def test_the_best_rival_on_the_box_is_named() -> None:
    rivals = [
        Detection(CUP.box, 0.5, "the bowl"),
        Detection(CUP.box, 0.7, "the plate"),
        Detection(ELSEWHERE, 0.9, "the box"),
    ]
    assert "more 'the plate' (raw score 0.70" in failures(CUP, [CUP.box], rivals)[0]
    assert failures(CUP, [], rivals) == []
