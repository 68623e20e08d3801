"""The scene listing through the runtime (issue 35): the `scene` output (every model lists by label), made in
steps beside the grounding stream, at most every `scene_every_seconds`; the imagine action's goal built on the
listing. A tiny random model lists what its untrained weights ground: the plumbing is what is tested here; the
goal layouts of whole scenes are tested on the world's truth in test_goal_scene.py, the embedded model's
listing in test_default_model.py."""

from __future__ import annotations

from echogen_ros.interfaces import typestore
from echogen_ros.planning.planner import NOT_LISTED
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.core import Runtime, RuntimeConfig
from echogen_ros.runtime.messages import MessageTypes
from echogen_ros.world.dataset import world_sample

STORE = typestore("humble")
MSGS = MessageTypes.from_typestore(STORE)


def _runtime(model) -> Runtime:
    return Runtime(model, MSGS, RuntimeConfig(every_frames=1, every_seconds=0.0, score_threshold=0.0))


def _frame(index: int, stamp: float):
    rgb = world_sample(0, index, "val").image(160, 120)
    return rgb, conv.image_message(MSGS, rgb, conv.header(MSGS, stamp, "head_camera"))


def _listed(runtime: Runtime, now: float):
    """Step the listing under way to its end: (its scene message, the steps it took)."""
    steps = 1
    made = runtime.list_step(now=now)
    while made.under_way:
        made, steps = runtime.list_step(now=now), steps + 1
    return made.scene, steps


def test_the_scene_is_listed_beside_the_grounding_in_steps(tiny_model) -> None:
    rgb, message = _frame(1, 7.5)
    runtime = _runtime(tiny_model)
    assert runtime.lists_scenes  # by label: every model
    assert runtime.list_step(now=0.0).scene is None and not runtime.list_step(now=0.0).under_way  # no instruction
    runtime.on_instruction("the cup")
    runtime.on_image(message, now=0.0)
    out = runtime.step(now=0.0)
    assert out.detections is not None
    scene, steps = _listed(runtime, 0.0)
    assert steps > 1  # in steps, never the whole listing between two groundings
    listed = tiny_model.parse_scene(rgb, 0.0).objects
    assert listed and scene is not None and len(scene.detections) == len(listed)
    assert (scene.header.stamp.sec, scene.header.stamp.nanosec, scene.header.frame_id) == (7, 500_000_000,
                                                                                           "head_camera")  # fmt: skip
    assert [d.results[0].hypothesis.class_id for d in scene.detections] == [d.label for d in listed]
    assert [d.id for d in scene.detections] == [f"object_{i}" for i in range(len(listed))]
    STORE.serialize_cdr(scene, "vision_msgs/msg/Detection2DArray")
    values = {kv.key: kv.value for kv in runtime.diagnostics(0.0).status[0].values}
    assert values["scenes_listed"] == "1" and float(values["last_scene_ms"]) > 0


def test_a_frame_due_meanwhile_is_grounded_between_steps(tiny_model) -> None:
    runtime = _runtime(tiny_model)
    runtime.on_instruction("the cup")
    runtime.on_image(_frame(1, 1.0)[1], now=0.0)
    runtime.step(now=0.0)
    assert runtime.list_step(now=0.0).under_way  # the listing of the frame stamped 1.0 started
    runtime.on_image(_frame(2, 2.0)[1], now=0.1)
    out = runtime.step(now=0.1)  # grounded while the listing is under way
    assert out is not None and out.detections.header.stamp.sec == 2
    scene, _ = _listed(runtime, 0.1)
    assert scene is not None and scene.header.stamp.sec == 1  # stamped with the frame it listed
    assert [d.results[0].hypothesis.class_id for d in scene.detections] == [
        d.label for d in tiny_model.parse_scene(_frame(1, 1.0)[0], 0.0).objects]  # fmt: skip


def _imagine(runtime: Runtime, instruction: str):
    goal = MSGS.ImagineGoal(instruction=instruction, layout=conv.empty_layout(MSGS, conv.header(MSGS, 0, "")),
                            seed=1, guidance=2.0)  # fmt: skip
    return runtime.imagine(goal)


def test_the_imagine_action_plans_on_the_listing(tiny_model) -> None:
    runtime = _runtime(tiny_model)
    runtime.on_image(_frame(4, 8.0)[1], now=0.0)
    result = _imagine(runtime, "put the cup above the plate")
    assert NOT_LISTED not in result.message, result.message  # planned on the listing
    assert result.success or "no free place" in result.message, result.message  # never a goal on an object
    picked = _imagine(runtime, "pick up the cup")
    assert NOT_LISTED not in picked.message, picked.message


def test_the_scene_is_listed_at_most_every_scene_every_seconds(tiny_model) -> None:
    runtime = _runtime(tiny_model)
    runtime.reconfigure(scene_every_seconds=1.0)
    runtime.on_instruction("the cup")
    listed = []
    for now in (0.0, 0.4, 0.9, 1.0, 1.5, 2.2):
        runtime.on_image(_frame(1, now)[1], now=now)
        out = runtime.step(now=now)
        assert out is not None and out.detections is not None  # every frame is grounded
        listed.append(runtime.list_step(now=now, whole=True).scene is not None)
    assert listed == [True, False, False, True, False, True]
    runtime.reconfigure(scene_every_seconds=0.0)  # 0: one listing after another
    for now in (2.3, 2.4):
        assert runtime.list_step(now=now, whole=True).scene is not None
    assert runtime.list_step(now=0.5, whole=True).scene is not None  # the clock went back: a bag played again
