"""Planning on world scenes with ground-truth boxes: parser table, goal layouts that satisfy their
relation inside the image without overlaps, and verification of the scene rendered from the goal."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from echogen_ros.domain.relations import Truth, relation_margin, relation_truth
from echogen_ros.model.layout import LayoutObject
from echogen_ros.planning.commands import Command, PlanningError, parse_command
from echogen_ros.planning.grounders import KnownObjectsGrounder
from echogen_ros.planning.phrases import KnownObject
from echogen_ros.planning.planner import plan
from echogen_ros.planning.verify import CANNOT_TELL, NOT_SATISFIED, SATISFIED, verify_command
from echogen_ros.world.dataset import world_sample
from echogen_ros.world.scene import Scene

PARSES = [
    ("put the red cup left of the blue plate", Command("put", "the red cup", "left of", ("the blue plate",))),
    ("place the ball between the bowl and the box", Command("put", "the ball", "between", ("the bowl", "the box"))),
    ("move the bottle next to the plate", Command("put", "the bottle", "next to", ("the plate",))),
    ("put the block on the plate", Command("put", "the block", "on", ("the plate",))),
    ("Put the block on top of the plate.", Command("put", "the block", "on", ("the plate",))),
    ("pick up the banana", Command("pick", "the banana")),
    ("pick the banana up", Command("pick", "the banana")),
    ("find the largest cup", Command("find", "the largest cup")),
    ("where is the second cup from the left", Command("find", "the second cup from the left")),
    ("please put the cup to the right of the bowl", Command("put", "the cup", "right of", ("the bowl",))),
    ("put the cup behind the box", Command("put", "the cup", "above", ("the box",))),
    ("set the green ball in front of the plate", Command("put", "the green ball", "below", ("the plate",))),
    ("move the cup left of the plate next to the bowl",
     Command("put", "the cup left of the plate", "next to", ("the bowl",))),
    ("put the cup that is left of the plate between the box and the red ball",
     Command("put", "the cup that is left of the plate", "between", ("the box", "the red ball"))),
]  # fmt: skip
UNSUPPORTED = ["", "   ", "dance", "put the cup", "throw the ball at the plate", "put the cup inside", "hello world"]


@pytest.mark.parametrize(("text", "expected"), PARSES)
def test_parser(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize("text", UNSUPPORTED)
def test_unsupported_commands_say_what_is_supported(text: str) -> None:
    with pytest.raises(PlanningError, match="supported"):
        parse_command(text)


def _known(scene: Scene, boxes) -> list[KnownObject]:
    return [KnownObject(o.category, tuple(map(float, b)), o.colour, o.size) for o, b in zip(scene.objects, boxes)]


def _setting(sample):
    objects = _known(sample.scene, sample.boxes())
    return objects, KnownObjectsGrounder(objects, 480)


def _feasible(objects: list[KnownObject], ins) -> bool:
    """Independent brute force: is there any 2-px grid position where the relation clearly holds
    (margin >= 2), inside the image, away from every other object?"""
    target = objects[ins.target].box
    w, h = min(target[2] - target[0], 320), min(target[3] - target[1], 240)
    anchors = [objects[j].box for j in ins.anchors]
    others = [
        o.box for k, o in enumerate(objects) if k != ins.target and not (ins.relation == "on" and k in ins.anchors)
    ]
    pad = 0.012 * 480
    for x in np.arange(pad, 640 - pad - w, 2.0):
        for y in np.arange(pad, 480 - pad - h, 2.0):
            box = (x, y, x + w, y + h)
            if any(
                box[0] < o[2] + pad and o[0] < box[2] + pad and box[1] < o[3] + pad and o[1] < box[3] + pad
                for o in others
            ):
                continue
            if relation_margin(ins.relation, box, anchors, 480) >= 2.0:
                return True
    return False


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_goal_layouts_hold_and_the_goal_scene_verifies() -> None:
    planned = infeasible = 0
    relations = set()
    for index in range(80):
        sample = world_sample(21, index, "val")
        objects, grounder = _setting(sample)
        image = sample.image()
        for ins in sample.instructions:
            if ins.action != "put":
                continue
            try:
                result = plan(image, ins.text, grounder)
            except PlanningError as exc:
                assert "no free place" in str(exc)
                assert not _feasible(objects, ins), f"{ins.text}: a place exists but the planner found none"
                infeasible += 1
                continue
            planned += 1
            relations.add(ins.relation)
            goal = result.goal_box
            anchors = [objects[j].box for j in ins.anchors]
            assert relation_truth(ins.relation, goal, anchors, 480) is Truth.TRUE, ins.text
            assert 0 <= goal[0] < goal[2] <= 640 and 0 <= goal[1] < goal[3] <= 480
            others = [
                o.box
                for k, o in enumerate(objects)
                if k != ins.target and not (ins.relation == "on" and k in ins.anchors)
            ]
            assert not any(_overlap(goal, other) for other in others), ins.text
            w, h = goal[2] - goal[0], goal[3] - goal[1]
            t = objects[ins.target].box
            assert (w, h) == pytest.approx((t[2] - t[0], t[3] - t[1])) or ins.relation == "on"
            assert result.verdict.status == NOT_SATISFIED, (ins.text, result.verdict.reason)
            assert len(result.goal_layout.objects) == len(objects)

            moved = list(sample.scene.objects)
            moved[ins.target] = replace(moved[ins.target], box=goal)  # 640×480 = reference pixels
            goal_scene = replace(sample.scene, objects=tuple(moved))
            from echogen_ros.world.render import pixel_box, render

            goal_image = render(goal_scene)
            goal_objects = _known(goal_scene, [pixel_box(o, 640, 480) for o in goal_scene.objects])
            verdict = verify_command(KnownObjectsGrounder(goal_objects, 480), goal_image, result.command)
            assert verdict.status == SATISFIED, (ins.text, verdict.reason)
    assert planned >= 150 and infeasible <= 0.25 * (planned + infeasible)
    assert relations == {"left of", "right of", "above", "below", "next to", "between", "on"}


def test_pick_and_find() -> None:
    sample = next(
        s for s in (world_sample(4, i, "val") for i in range(40)) if any(e.kind == "category" for e in s.expressions)
    )
    objects, grounder = _setting(sample)
    expr = next(e for e in sample.expressions if e.kind == "category")
    picked = plan(sample.image(), f"pick up {expr.text}", grounder)
    assert picked.goal_box is None and len(picked.goal_layout.objects) == len(objects) - 1
    assert picked.verdict.status == NOT_SATISFIED
    found = plan(sample.image(), f"find {expr.text}", grounder)
    assert found.verdict.status == SATISFIED and found.target.box == objects[expr.target].box


def _repeated_and_absent():
    """A val scene with a category it has twice: (sample, that category, a category it lacks)."""
    sample = next(s for s in (world_sample(6, i, "val") for i in range(60))
                  if len({o.category for o in s.scene.objects}) < len(s.scene.objects))  # fmt: skip
    repeated = next(
        o.category for o in sample.scene.objects if sum(p.category == o.category for p in sample.scene.objects) > 1
    )
    absent = next(c for c in ("cup", "plate", "bowl", "bottle", "block", "ball", "box", "banana")
                  if all(o.category != c for o in sample.scene.objects))  # fmt: skip
    return sample, repeated, absent


def test_ambiguity_and_missing_objects_are_reported() -> None:
    sample, repeated, absent = _repeated_and_absent()
    objects, grounder = _setting(sample)
    with pytest.raises(PlanningError, match="cannot find"):
        plan(sample.image(), f"find the {absent}", grounder)
    result = plan(sample.image(), f"find the {repeated}", grounder)
    assert result.ambiguities and "more than one" in result.ambiguities[0]
    other = next(o for o in sample.scene.objects if o.category != repeated)
    verdict = verify_command(
        grounder, sample.image(), parse_command(f"put the {repeated} left of the {other.colour} {other.category}")
    )
    assert (
        verdict.status in (CANNOT_TELL,)
        or "ambiguous" in verdict.reason
        or len({o.colour for o in sample.scene.objects if o.category == other.category}) > 1
    )


def test_phrases_resolve_like_the_world_means_them() -> None:
    checked = 0
    for index in range(60):
        sample = world_sample(8, index, "val")
        objects, grounder = _setting(sample)
        for expr in sample.expressions:
            found = grounder.ground(sample.image(), expr.text, top_k=3)
            assert [d.box for d in found] == [objects[expr.target].box], expr.text
            checked += 1
    assert checked > 300


def test_model_grounder_plans_with_a_tiny_model(tiny_model) -> None:
    from echogen_ros.planning.grounders import ModelGrounder

    image = world_sample(0, 0, "val").image(320, 240)
    result = plan(image, "put the red mug above the plate", ModelGrounder(tiny_model, 0.0))  # room above
    assert result.target.label == "the red cup" and len(result.anchors) == 1
    assert result.goal_layout.width == 320 and np.isfinite(result.verdict.score)
    assert 0 <= result.target.score <= 1  # the probability find gave (the tiny model's raw score: no calibration)


def test_the_planner_refuses_a_referent_the_model_did_not_find_with_the_reason(tiny_model) -> None:
    """Absent, unknown or not sure enough: plan raises with the model's reason; verify says it as its verdict
    (put: cannot tell; find: not satisfied; pick up: satisfied) and refuses words it cannot read."""
    from echogen_ros.planning.grounders import ModelGrounder, NotFound

    image = world_sample(0, 0, "val").image(320, 240)
    unsure = ModelGrounder(tiny_model, 1.0)  # a random model is never that sure
    with pytest.raises(NotFound) as caught:
        unsure.ground(image, "the red cup")
    assert caught.value.observed and str(caught.value)
    why = str(caught.value)
    with pytest.raises(PlanningError, match="^cannot find 'the red cup' in the image: ") as refused:
        plan(image, "put the red cup above the plate", unsure)
    assert str(refused.value).endswith(why)
    put = verify_command(unsure, image, parse_command("put the red cup above the plate"))
    assert put.status == CANNOT_TELL and put.reason.startswith("cannot find the red cup, the plate in the frame (")
    assert f"the red cup: {why}" in put.reason
    assert verify_command(unsure, image, parse_command("find the red cup")).status == NOT_SATISFIED
    assert verify_command(unsure, image, parse_command("pick up the red cup")).status == SATISFIED
    sure = ModelGrounder(tiny_model, 0.0)
    with pytest.raises(NotFound, match="'the scissors' names no object I know") as unknown:
        sure.ground(image, "the scissors")
    assert not unknown.value.observed
    for instruction in ("put the scissors above the plate", "pick up the scissors", "find the xyzzy"):
        with pytest.raises(PlanningError, match="names no object I know"):
            plan(image, instruction, sure)
        with pytest.raises(PlanningError, match="names no object I know"):
            verify_command(sure, image, parse_command(instruction))


def test_a_goal_layout_naming_two_alike_objects_verifies_both() -> None:
    """Two red cups: the layout's two "red cup" boxes are matched to the two cups found, in either order (one
    grounding per object would find the same cup twice and call the other misplaced)."""
    from echogen_ros.model.layout import Layout
    from echogen_ros.planning.verify import verify_layout

    left, right, plate = (40.0, 300.0, 100.0, 380.0), (400.0, 300.0, 460.0, 380.0), (200.0, 320.0, 320.0, 360.0)
    scene = [KnownObject("cup", left, "red"), KnownObject("plate", plate, "white"), KnownObject("cup", right, "red")]
    grounder, image = KnownObjectsGrounder(scene, 480), np.zeros((480, 640, 3), np.uint8)
    cup = "red cup"
    goal = Layout(640, 480, (LayoutObject(cup, right), LayoutObject("plate", plate), LayoutObject(cup, left)))
    verdict, ious = verify_layout(grounder, image, goal)
    assert verdict.status == SATISFIED and ious == [1.0, 1.0, 1.0]
    moved = Layout(640, 480, (LayoutObject("red cup", right), LayoutObject("red cup", (40.0, 20.0, 100.0, 100.0))))
    verdict, ious = verify_layout(grounder, image, moved)
    assert verdict.status == NOT_SATISFIED and ious[0] == 1.0 and ious[1] == 0.0 and "red cup" in verdict.reason
    three = Layout(640, 480, (LayoutObject(cup, left), LayoutObject(cup, right), LayoutObject(cup, plate)))
    assert verify_layout(grounder, image, three)[1] == [1.0, 1.0, 0.0]  # a third cup that is not there


def test_a_missing_object_is_the_reason_not_an_ambiguous_one() -> None:
    """'ambiguous ...; cannot find ...' gave two contradictory reasons; a missing object decides alone."""
    sample, repeated, absent = _repeated_and_absent()
    _, grounder = _setting(sample)
    missing = verify_command(grounder, sample.image(), parse_command(f"put the {repeated} left of the {absent}"))
    assert missing.status == CANNOT_TELL and missing.reason == f"cannot find the {absent} in the frame"
    unique = next(o for o in sample.scene.objects if sum(p.category == o.category for p in sample.scene.objects) == 1)
    rival = verify_command(grounder, sample.image(), parse_command(f"put the {repeated} left of the {unique.category}"))
    assert rival.status == CANNOT_TELL and rival.reason.startswith(f"ambiguous: the {repeated} matches more than one")
    assert "cannot find" not in rival.reason


class _CountingGuard:
    """A context manager that counts how often it was held (the node's model lock stands here)."""

    def __init__(self) -> None:
        self.held = 0

    def __enter__(self):
        self.held += 1

    def __exit__(self, *exc) -> None:
        return None


def test_one_imagination_pipeline_reports_stages_holds_the_guard_and_cancels(tiny_model) -> None:
    from echogen_ros.model.layout import Layout
    from echogen_ros.planning.grounders import ModelGrounder
    from echogen_ros.planning.imagination import STAGES, Cancelled, imagine_goal

    cups = (LayoutObject("red cup", (10, 20, 90, 100)), LayoutObject("red cup", (150, 20, 230, 100)))
    layout = Layout(320, 240, cups)
    stages, guard = [], _CountingGuard()
    result = imagine_goal(tiny_model, layout, None, seed=3, progress=lambda s, f: stages.append((s, f)), guard=guard)
    assert [s for s, _ in stages] == list(STAGES) and [f for _, f in stages] == sorted(f for _, f in stages)
    assert guard.held == 2 and result.plan is None and not result.satisfied_now  # imagine, then ground back
    assert result.cycle.image.shape == (240, 320, 3) and len(result.cycle.ious) == 2
    own = tiny_model.cycle(layout, seed=3)  # the same cycle check as the model's own
    assert np.array_equal(result.cycle.image, own.image) and result.cycle.ious == own.ious
    seen = []
    with pytest.raises(Cancelled):
        imagine_goal(tiny_model, layout, None, seed=3, progress=lambda s, f: seen.append(s),
                     cancelled=lambda: "generating" in seen)  # fmt: skip
    assert seen == ["planning", "generating"]  # cancelled before the grounding
    command = parse_command("put the red cup above the plate")  # a random model's boxes sit low: room above
    with pytest.raises(ValueError, match="needs a camera frame"):
        imagine_goal(tiny_model, command, None)
    frame, grounder = world_sample(0, 2, "test").image(), ModelGrounder(tiny_model, 0.0)
    planned = imagine_goal(tiny_model, command, frame, seed=2, grounder=grounder, guard=guard)
    assert planned.plan is not None and planned.goal_layout == planned.plan.goal_layout and guard.held == 2 + 4


def test_a_referent_not_found_is_gone_only_as_surely_as_the_model_says() -> None:
    """'pick up X' with X not found: satisfied, with 1 − the probability that X is there all the same (a model
    unsure at 0.4 does not make the verdict sure)."""
    from echogen_ros.planning.commands import parse_command
    from echogen_ros.planning.verify import SATISFIED, judge

    verdict = judge(parse_command("pick up the red cup"), None, [], 480, presence=0.4)
    assert verdict.status == SATISFIED and verdict.score == pytest.approx(0.6)
    assert judge(parse_command("find the red cup"), None, [], 480, presence=0.1).score == pytest.approx(0.9)
