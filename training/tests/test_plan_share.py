"""experiments.plan_share on fixed world scenes (val, seed 21): with the truth listing the scene every goal keeps
every object and lands on none, every pick-up plans, and every refusal for want of a place is one the brute
force confirms; without the listing (the control) goals land on other objects and no pick-up plans. The brute
force itself finds a place where one is and none where none is."""

from __future__ import annotations

from experiments import plan_share

from echogen_ros.world.dataset import world_sample


def test_with_the_truth_listed_goals_keep_the_scene_and_refusals_are_right() -> None:
    samples = [world_sample(21, i, "val") for i in range(40)]
    truth = lambda s: plan_share.truth(s)  # noqa: E731
    report = plan_share.measure(samples, {"truth": truth, "unlisted": lambda s: plan_share.Unlisted(truth(s))})
    listed, unlisted = report["truth"], report["unlisted"]
    assert listed["instructions"] == unlisted["instructions"] >= 100 and listed["pick"] >= 5
    assert listed["planned_put"] >= 0.75 and listed["planned_pick"] == 1.0
    assert listed["no_free_place_but_a_place_exists"] == 0 and listed["no_free_place"] > 0
    assert listed["goal_on_another_object"] == 0.0 and listed["every_object_kept"] == 1.0
    assert listed["target_right"] == 1.0 and listed["not_found"] == listed["other_refusal"] == 0.0
    assert unlisted["goal_on_another_object"] > 0.05 and unlisted["every_object_kept"] == 0.0  # the control
    assert unlisted["planned_pick"] == 0.0  # "the goal scene is empty"


def test_the_brute_force_finds_a_place_only_where_there_is_one() -> None:
    cup, plate = (300.0, 200.0, 340.0, 240.0), (100.0, 200.0, 200.0, 240.0)
    assert plan_share.feasible([cup, plate], 0, "left of", (1,), 640, 480)  # room left of the plate
    wall = (0.0, 0.0, 99.0, 480.0)  # everything left of the plate is taken
    assert not plan_share.feasible([cup, plate, wall], 0, "left of", (1,), 640, 480)
    assert plan_share.feasible([cup, plate, wall], 0, "right of", (1,), 640, 480)
