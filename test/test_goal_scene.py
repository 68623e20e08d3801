"""Goal layouts of whole scenes (issue 35) on fixed world scenes, with the world's truth as the scene listing:
every object kept where it is and named as observed, the target moved clear of all of them inside the frame,
a picked object removed; without a listing the plan says so and holds the target and anchors alone."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from echogen_ros.domain.relations import MARGIN
from echogen_ros.model.layout import Detection
from echogen_ros.planning.commands import PlanningError
from echogen_ros.planning.grounders import KnownObjectsGrounder
from echogen_ros.planning.phrases import KnownObject
from echogen_ros.planning.planner import NOT_LISTED, plan
from echogen_ros.world.dataset import world_sample

SCENES = [world_sample(21, index, "val") for index in range(40)]  # fixed: seed 21, the first 40 val scenes


def _truth(sample) -> KnownObjectsGrounder:
    objects = [KnownObject(o.category, tuple(map(float, b)), o.colour, o.size)
               for o, b in zip(sample.scene.objects, sample.boxes())]  # fmt: skip
    return KnownObjectsGrounder(objects, 480)


def _apart(a, b, clearance: float) -> bool:
    return a[2] + clearance <= b[0] or b[2] + clearance <= a[0] or a[3] + clearance <= b[1] or b[3] + clearance <= a[1]


def _planned(action: str):
    for sample in SCENES:
        for ins in (i for i in sample.instructions if i.action == action):
            try:
                yield sample, ins, plan(sample.image(), ins.text, _truth(sample))
            except PlanningError as exc:
                assert "no free place" in str(exc), (ins.text, str(exc))  # the only way a truth plan may fail


def test_a_put_keeps_every_object_and_moves_the_target_clear_of_all_inside_the_frame() -> None:
    count = 0
    for sample, ins, result in _planned("put"):
        boxes, labels = [tuple(map(float, b)) for b in sample.boxes()], sample.labels()
        layout = result.goal_layout
        assert Counter(o.label for o in layout.objects) == Counter(labels), ins.text  # every object, as observed
        assert layout.objects[0].label == labels[ins.target] and layout.objects[0].box == result.goal_box
        unmoved = [o.box for o in layout.objects[1:]]
        assert Counter(unmoved) == Counter(b for k, b in enumerate(boxes) if k != ins.target), ins.text
        goal, edge = result.goal_box, MARGIN * 480
        assert edge <= goal[0] < goal[2] <= 640 - edge and edge <= goal[1] < goal[3] <= 480 - edge, ins.text
        under = ins.anchors if ins.relation == "on" else ()  # what the target is put on
        resting = [b for k, b in enumerate(boxes) if k != ins.target and k not in under]
        assert all(_apart(goal, b, edge * 0.999) for b in resting), ins.text  # a margin from every object
        assert result.scene is not None and len(result.scene) == len(boxes) and result.notes == []
        assert result.to_json()["scene"]["listed"] and len(result.to_json()["scene"]["objects"]) == len(boxes)
        count += 1
    assert count >= 60


def test_pick_up_plans_and_removes_only_the_target() -> None:
    count = 0
    for sample, ins, result in _planned("pick"):
        labels, boxes = sample.labels(), [tuple(map(float, b)) for b in sample.boxes()]
        kept = Counter((labels[k], boxes[k]) for k in range(len(labels)) if k != ins.target)
        assert Counter((o.label, o.box) for o in result.goal_layout.objects) == kept, ins.text
        assert result.goal_box is None and result.verdict.status == "not_satisfied"
        count += 1
    assert count >= 5


def test_find_keeps_the_scene_as_it_is() -> None:
    sample = SCENES[0]
    expr = next(e for e in sample.expressions if e.kind == "attribute")
    result = plan(sample.image(), f"find {expr.text}", _truth(sample))
    truth = Counter(zip(sample.labels(), (tuple(map(float, b)) for b in sample.boxes())))
    assert Counter((o.label, o.box) for o in result.goal_layout.objects) == truth


class _Listing:
    """The truth's grounding with a listing of the scene that lacks some objects (as a model's may), or none."""

    def __init__(self, truth: KnownObjectsGrounder, keep) -> None:
        self.truth, self.keep = truth, keep

    def ground(self, image: np.ndarray, phrase: str, top_k: int = 2) -> list[Detection]:
        return self.truth.ground(image, phrase, top_k)

    def scene(self, image: np.ndarray) -> list[Detection] | None:
        if self.keep is None:
            return None  # no listing at all
        return [d for k, d in enumerate(self.truth.scene(image)) if self.keep(k)]


def test_a_referent_the_listing_lacks_is_drawn_as_named_and_said() -> None:
    sample, ins = next((s, i) for s in SCENES for i in s.instructions if i.action == "put")
    listing = _Listing(_truth(sample), lambda k: k != ins.target)
    result = plan(sample.image(), ins.text, listing)
    assert result.goal_layout.objects[0].label == result.command.target  # the phrase: no colour observed
    assert len(result.goal_layout.objects) == len(sample.scene.objects)  # not drawn twice, not lost
    assert len(result.notes) == 1 and "is not among the" in result.notes[0] and result.command.target in result.notes[0]


def test_the_only_object_picked_up_leaves_an_empty_scene_said_plainly() -> None:
    sample = next(s for s in SCENES if any(i.action == "pick" for i in s.instructions))
    ins = next(i for i in sample.instructions if i.action == "pick")
    alone = _Listing(_truth(sample), lambda k: k == ins.target)
    with pytest.raises(PlanningError, match="the goal scene is empty: .* the only object in view$"):
        plan(sample.image(), ins.text, alone)


def test_a_grounder_that_cannot_list_a_scene_plans_as_before_and_says_so() -> None:
    sample = SCENES[0]
    unlisted = _Listing(_truth(sample), keep=None)  # the truth's grounding, no listing (a grounder may have none)
    image = sample.image()
    ins = next(i for i in sample.instructions if i.action == "put")
    result = plan(image, ins.text, unlisted)
    assert [o.label for o in result.goal_layout.objects] == [result.command.target, *result.command.anchors]
    assert result.notes == [NOT_LISTED] and result.scene is None
    assert result.to_json()["scene"] == {"listed": False, "objects": []} and result.to_json()["notes"] == [NOT_LISTED]
    pick = next((i for s in SCENES for i in s.instructions if i.action == "pick" and s is sample), None)
    phrase = pick.text if pick is not None else f"pick up {result.command.target}"
    with pytest.raises(PlanningError, match="goal scene is empty: .*the rest of the scene was not listed"):
        plan(image, phrase, unlisted)


def test_every_model_lists_the_scene_by_label(tiny_model) -> None:
    from echogen_ros.planning.grounders import ModelGrounder, lists_scenes

    assert lists_scenes(tiny_model)  # by label: any grounding model, trained for a listing or not
    listed = ModelGrounder(tiny_model, 0.0).scene(world_sample(0, 0, "val").image(320, 240))
    assert listed and all(d.label.count(" ") == 1 for d in listed)  # "colour category", as observed
    assert ModelGrounder(tiny_model, 1.0).scene(world_sample(0, 0, "val").image(320, 240)) == []
