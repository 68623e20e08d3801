"""The scene listing through the runtime (issue 35): the `scene` output of each grounding where the model lists
scenes (its manifest says so), none where it does not; the imagine action's goal built on the listing, and its
message saying plainly when the model lists no scene. A tiny random model stands for both kinds: the one
marked capable lists what its untrained weights list (nothing, on these frames: the plumbing is what is
tested here; the goal layouts of whole scenes are tested on the world's truth in test_goal_scene.py)."""

from __future__ import annotations

import pytest

from echogen_ros.interfaces import typestore
from echogen_ros.planning.planner import NOT_LISTED
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.core import Runtime, RuntimeConfig
from echogen_ros.runtime.messages import MessageTypes
from echogen_ros.world.dataset import world_sample

STORE = typestore("humble")
MSGS = MessageTypes.from_typestore(STORE)


@pytest.fixture(scope="module")
def listing_model(tiny_model_dir):
    """The tiny model, its manifest saying it was trained to list scenes (as a run with the inventory task's)."""
    from echogen_ros.model import inventory
    from echogen_ros.model.echogen import EchoGen

    model = EchoGen.load(tiny_model_dir)
    model.manifest = inventory.with_capability(model.manifest)
    return model


def _runtime(model) -> Runtime:
    return Runtime(model, MSGS, RuntimeConfig(every_frames=1, every_seconds=0.0, score_threshold=0.0))


def _frame(index: int, stamp: float):
    rgb = world_sample(0, index, "val").image(160, 120)
    return rgb, conv.image_message(MSGS, rgb, conv.header(MSGS, stamp, "head_camera"))


def test_each_grounding_lists_the_scene_where_the_model_lists_scenes(listing_model, tiny_model) -> None:
    rgb, message = _frame(1, 7.5)
    runtime = _runtime(listing_model)
    assert runtime.lists_scenes
    runtime.on_instruction("the cup")
    runtime.on_image(message, now=0.0)
    out = runtime.step(now=0.0)
    listed = listing_model.parse_scene(rgb, 0.0).objects
    assert out.scene is not None and len(out.scene.detections) == len(listed)
    assert (out.scene.header.stamp.sec, out.scene.header.stamp.nanosec, out.scene.header.frame_id) == (
        7, 500_000_000, "head_camera")  # fmt: skip
    assert [d.results[0].hypothesis.class_id for d in out.scene.detections] == [d.label for d in listed]
    assert [d.id for d in out.scene.detections] == [f"object_{i}" for i in range(len(listed))]
    STORE.serialize_cdr(out.scene, "vision_msgs/msg/Detection2DArray")
    plain = _runtime(tiny_model)
    assert not plain.lists_scenes
    plain.on_instruction("the cup")
    plain.on_image(message, now=0.0)
    assert plain.step(now=0.0).scene is None  # a model that lists no scene publishes none


def _imagine(runtime: Runtime, instruction: str):
    goal = MSGS.ImagineGoal(instruction=instruction, layout=conv.empty_layout(MSGS, conv.header(MSGS, 0, "")),
                            seed=1, guidance=2.0)  # fmt: skip
    return runtime.imagine(goal)


def test_the_imagine_action_plans_on_the_listing_or_says_there_is_none(listing_model, tiny_model) -> None:
    instruction = "put the cup above the plate"  # a random model's boxes sit at the bottom edge: room above
    for model in (tiny_model, listing_model):
        runtime = _runtime(model)
        runtime.on_image(_frame(4, 8.0)[1], now=0.0)
        result = _imagine(runtime, instruction)
        assert result.success, result.message
        assert (NOT_LISTED in result.message) is (model is tiny_model), result.message
        if model is listing_model:  # it lists nothing here: the referents are drawn as named, and that is said
            assert "is not among the 0 objects listed in the frame" in result.message
        assert [o.label for o in result.goal_layout.objects] == ["the cup", "the plate"]
    runtime = _runtime(tiny_model)
    runtime.on_image(_frame(4, 8.0)[1], now=0.0)
    picked = _imagine(runtime, "pick up the cup")
    assert not picked.success and "the goal scene is empty" in picked.message and NOT_LISTED in picked.message


def test_the_scene_is_listed_at_most_every_scene_every_seconds(listing_model) -> None:
    runtime = _runtime(listing_model)  # scene_every_seconds: the default, 1 s
    runtime.on_instruction("the cup")
    listed = []
    for now in (0.0, 0.4, 0.9, 1.0, 1.5, 2.2):
        runtime.on_image(_frame(1, now)[1], now=now)
        out = runtime.step(now=now)
        assert out is not None and out.detections is not None  # every frame is grounded
        listed.append(out.scene is not None)
    assert listed == [True, False, False, True, False, True]
    runtime.reconfigure(scene_every_seconds=0.0)  # 0: with every grounding
    for now in (2.3, 2.4):
        runtime.on_image(_frame(1, now)[1], now=now)
        assert runtime.step(now=now).scene is not None
