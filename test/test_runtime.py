"""The runtime on rosbags message classes with a tiny random model: headers, latest-frame policy, the
schedule, every service/action flow, and a table of bad inputs that never crash it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from bombs import png_claiming

from echogen_ros.interfaces import typestore
from echogen_ros.planning.imagination import Cancelled
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.core import Runtime, RuntimeConfig
from echogen_ros.runtime.messages import MessageTypes
from echogen_ros.world.dataset import world_sample

STORE = typestore("humble")
MSGS = MessageTypes.from_typestore(STORE)


def frame_msg(index: int, stamp: float = 1.0, frame_id: str = "cam", size=(160, 120)):
    rgb = world_sample(0, index, "val").image(*size)
    return conv.image_message(MSGS, rgb, conv.header(MSGS, stamp, frame_id))


@pytest.fixture
def runtime(tiny_model) -> Runtime:
    return Runtime(tiny_model, MSGS, RuntimeConfig(every_frames=3, every_seconds=10.0, score_threshold=0.0))


def _roundtrip(msg, msgtype: str):
    raw = STORE.serialize_cdr(msg, msgtype)
    return STORE.deserialize_cdr(raw, msgtype)


def test_grounding_copies_the_camera_header_everywhere(runtime: Runtime) -> None:
    runtime.on_instruction("put the red cup left of the plate")
    assert runtime.on_image(frame_msg(0, stamp=42.25, frame_id="head_camera"), now=0.0) is None
    out = runtime.step(now=0.0)
    assert out is not None and len(out.detections.detections) == 2
    for header in [out.detections.header, out.debug_image.header] + [d.header for d in out.detections.detections]:
        assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (42, 250_000_000, "head_camera")
    first = out.detections.detections[0]
    assert first.results[0].hypothesis.class_id == "the red cup" and first.id == "target"
    assert out.detections.detections[1].id == "anchor_0" and 0 <= first.results[0].hypothesis.score <= 1
    back = _roundtrip(out.detections, "vision_msgs/msg/Detection2DArray")
    assert back.detections[0].bbox.size_x == pytest.approx(first.bbox.size_x)
    assert (out.debug_image.width, out.debug_image.height, out.debug_image.encoding) == (160, 120, "rgb8")
    _roundtrip(out.debug_image, "sensor_msgs/msg/Image")


def test_latest_frame_only_and_the_schedule(runtime: Runtime) -> None:
    assert runtime.step(now=0.0) is None  # nothing to ground yet
    runtime.on_instruction("the ball")
    for i in range(5):
        runtime.on_image(frame_msg(i, stamp=float(i)), now=float(i))
    out = runtime.step(now=5.0)
    assert out.detections.header.stamp.sec == 4  # the newest frame, not a backlog
    assert runtime.latest.replaced == 4
    assert runtime.step(now=5.1) is None  # no new frame, not due
    runtime.on_image(frame_msg(5, stamp=5.0), now=5.2)
    assert runtime.step(now=5.2) is None  # 1 frame < every_frames=3
    runtime.on_image(frame_msg(6, stamp=6.0), now=5.3)
    runtime.on_image(frame_msg(7, stamp=7.0), now=5.4)
    assert runtime.step(now=5.4).detections.header.stamp.sec == 7  # 3 frames since the last grounding
    runtime.on_image(frame_msg(8, stamp=8.0), now=20.0)
    assert runtime.step(now=20.0) is not None  # 10 s elapsed
    runtime.on_instruction("the cup")
    runtime.on_image(frame_msg(9, stamp=9.0), now=20.1)
    assert runtime.step(now=20.1) is not None  # a new instruction grounds at once


def test_reconfigure_takes_effect_at_once(runtime: Runtime) -> None:
    runtime.on_instruction("the cup")
    runtime.on_image(frame_msg(0), now=0.0)
    assert len(runtime.step(now=0.0).detections.detections) == 1
    runtime.reconfigure(score_threshold=1.0, every_frames=1, debug_image=False)
    runtime.on_image(frame_msg(1), now=0.1)
    out = runtime.step(now=0.1)  # due after one frame now (was three)
    assert out.detections.detections == [] and out.debug_image is None and "not found 'the cup'" in out.status
    with pytest.raises(ValueError, match=">= 0"):
        runtime.reconfigure(every_seconds=-1.0)
    assert runtime.config.every_seconds == 10.0  # a refused change leaves the config as it was


class _FailingModel:
    def find_many(self, rgb, phrases, threshold):
        raise RuntimeError("input is smaller than the kernel")


def test_a_frame_the_model_cannot_take_is_a_status_not_a_crash(tiny_model) -> None:
    runtime = Runtime(tiny_model, MSGS, RuntimeConfig(every_frames=1))
    runtime.model = _FailingModel()
    runtime.on_instruction("the cup")
    runtime.on_image(frame_msg(0), now=0.0)
    out = runtime.step(now=0.0)
    assert out.detections is None and "cannot ground this frame: input is smaller" in out.status
    runtime.model = tiny_model
    runtime.on_image(frame_msg(1), now=0.1)
    assert runtime.step(now=0.1).detections is not None  # the stream goes on


def test_sim_camera_ground_truth_is_the_frame_it_shows() -> None:
    from echogen_ros.runtime.sim_camera import SimCamera

    camera = SimCamera(MSGS, width=320, height=240, seed=3, split="val", frames_per_scene=2)
    image, info, sample = camera.next(12.5)
    truth = _roundtrip(camera.ground_truth(sample, image.header), "echogen_ros/msg/Layout")
    assert (truth.header.stamp.sec, truth.header.frame_id) == (12, "sim_camera_optical")
    assert (truth.width, truth.height) == (320, 240) and len(truth.objects) == len(sample.scene.objects)
    first = sample.scene.objects[0]
    assert truth.objects[0].label == f"{first.colour} {first.category}"
    assert conv.box_of(truth.objects[0].bbox) == pytest.approx(sample.boxes(320, 240)[0])


def test_a_referent_not_found_is_not_published_and_status_says_why(tiny_model) -> None:
    """At a threshold no box reaches, nothing is published for the phrase; status and /diagnostics say which
    phrase was not found and why. A phrase naming no known object is never published, whatever the threshold."""
    runtime = Runtime(tiny_model, MSGS, RuntimeConfig(every_frames=1, score_threshold=0.0))
    runtime.on_instruction("put the cup left of the scissors")
    runtime.on_image(frame_msg(0), now=0.0)
    out = runtime.step(now=0.0)
    assert [d.id for d in out.detections.detections] == ["target"]  # the cup; never the scissors
    assert "grounded 1/2" in out.status and "not found 'the scissors'" in out.status and "names no object" in out.status
    assert [f.found for f in out.findings] == [True, False] and out.findings[1].unknown_words == ("scissors",)
    runtime.reconfigure(score_threshold=1.0)  # the tiny model is never that sure
    runtime.on_image(frame_msg(1), now=0.1)
    out = runtime.step(now=0.1)
    assert out.detections.detections == [] and "grounded 0/2" in out.status
    assert "not found 'the cup': " in out.status and not out.findings[0].detections and out.findings[0].reason
    values = {kv.key: kv.value for kv in runtime.diagnostics(now=0.2).status[0].values}
    assert "not found 'the cup'" in values["not_found"] and "not found 'the scissors'" in values["not_found"]


def test_ground_service_with_request_image_latest_frame_and_no_frame(runtime: Runtime) -> None:
    request = MSGS.GroundRequest(image=conv.empty_image(MSGS, conv.header(MSGS, 0, "")), expression="the bowl", top_k=0)
    response = runtime.ground(request)
    assert not response.success and "no camera frame" in response.message
    runtime.on_image(frame_msg(1, stamp=3.0, frame_id="latest"), now=0.0)
    response = runtime.ground(request)
    assert response.success and len(response.detections.detections) == 1
    assert response.detections.header.frame_id == "latest"
    given = MSGS.GroundRequest(image=frame_msg(2, frame_id="given"), expression="the bowl", top_k=3)
    response = runtime.ground(given)
    assert (
        response.success and len(response.detections.detections) == 3 and response.detections.header.frame_id == "given"
    )
    _roundtrip(response, "echogen_ros/srv/Ground_Response")


def test_verify_service_with_instruction_and_layout(runtime: Runtime) -> None:
    runtime.on_image(frame_msg(3), now=0.0)
    empty = conv.empty_layout(MSGS, conv.header(MSGS, 0, ""))
    no_image = conv.empty_image(MSGS, conv.header(MSGS, 0, ""))
    response = runtime.verify(
        MSGS.VerifyRequest(instruction="put the cup left of the plate", goal_layout=empty, image=no_image)
    )
    assert response.success and len(response.relations) == 1
    assert response.relations[0].relation == "left of" and response.relations[0].verdict in (0, 1, 2)
    from echogen_ros.model.layout import Layout, LayoutObject

    layout = Layout(160, 120, (LayoutObject("red cup", (10, 10, 50, 50)), LayoutObject("plate", (80, 40, 150, 100))))
    request = MSGS.VerifyRequest(
        instruction="", goal_layout=conv.layout_message(MSGS, layout, conv.header(MSGS, 0, "")), image=no_image
    )
    response = runtime.verify(request)
    assert response.success and [r.target for r in response.relations] == ["red cup", "plate"]
    _roundtrip(response, "echogen_ros/srv/Verify_Response")


def test_imagine_action_with_layout_and_instruction_and_cancel(runtime: Runtime) -> None:
    from echogen_ros.model.layout import Layout, LayoutObject

    runtime.on_image(frame_msg(4, stamp=8.0), now=0.0)
    layout = Layout(160, 120, (LayoutObject("red cup", (10, 10, 50, 50)),), "a table")
    goal = MSGS.ImagineGoal(
        instruction="", layout=conv.layout_message(MSGS, layout, conv.header(MSGS, 0, "")), seed=3, guidance=0.0
    )
    stages = []
    result = runtime.imagine(goal, feedback=lambda stage, progress: stages.append((stage, progress)))
    assert result.success and (result.image.width, result.image.height) == (160, 120)
    assert len(result.object_iou) == 1 and 0 <= result.cycle_iou <= 1 and result.image.header.stamp.sec == 8
    assert [s for s, _ in stages] == ["planning", "generating", "grounding", "verifying", "done"]
    assert [p for _, p in stages] == sorted(p for _, p in stages)
    again = runtime.imagine(goal)
    assert np.array_equal(np.asarray(again.image.data), np.asarray(result.image.data))  # same seed, same image
    _roundtrip(result, "echogen_ros/action/Imagine_Result")
    planned = runtime.imagine(
        MSGS.ImagineGoal(
            instruction="put the cup above the plate",  # a random model's boxes sit at the bottom edge
            layout=conv.empty_layout(MSGS, conv.header(MSGS, 0, "")),
            seed=1,
            guidance=2.0,
        )
    )
    assert planned.success, planned.message
    assert len(planned.goal_layout.objects) == 2
    with pytest.raises(Cancelled):
        runtime.imagine(goal, cancelled=lambda: True)


def test_the_imagine_action_says_whether_the_cycle_check_passed_at_the_nodes_threshold(tiny_model) -> None:
    """`cycle_threshold` (a parameter, default planning's CYCLE_THRESHOLD) decides the verdict in the message;
    `decoder_map` asks for the layout-reading decoder's drawing, which a model without one refuses."""
    from echogen_ros.model.layout import Layout, LayoutObject
    from echogen_ros.planning.imagination import CYCLE_THRESHOLD

    assert RuntimeConfig().cycle_threshold == CYCLE_THRESHOLD and not RuntimeConfig().decoder_map
    layout = Layout(160, 120, (LayoutObject("red cup", (10, 10, 50, 50)),), "a table")
    goal = MSGS.ImagineGoal(
        instruction="", layout=conv.layout_message(MSGS, layout, conv.header(MSGS, 0, "")), seed=3, guidance=0.0
    )
    said = {}
    for threshold in (0.0, 1.0):  # a random model's box never matches exactly: IoU < 1
        result = Runtime(tiny_model, MSGS, RuntimeConfig(cycle_threshold=threshold)).imagine(goal)
        assert result.success and f"vs {threshold:.2f}" in result.message
        said[threshold] = result.message
    assert "cycle check passed" in said[0.0] and "cycle check failed" in said[1.0]
    mapped = Runtime(tiny_model, MSGS, RuntimeConfig(decoder_map=True)).imagine(goal)
    assert not mapped.success and "no layout-reading decoder" in mapped.message


def _layout_msg(boxes, width=160, height=120):
    from echogen_ros.model.layout import Layout, LayoutObject

    layout = Layout(width, height, tuple(LayoutObject("cup", b) for b in boxes))
    return conv.layout_message(MSGS, layout, conv.header(MSGS, 0, ""))


def _bad_cases():
    no_image = conv.empty_image(MSGS, conv.header(MSGS, 0, ""))
    empty = conv.empty_layout(MSGS, conv.header(MSGS, 0, ""))

    def goal(instruction="", layout=empty, guidance=0.0):
        return MSGS.ImagineGoal(instruction=instruction, layout=layout, seed=1, guidance=guidance)

    def image(encoding="rgb8", width=16, height=16, step=48, data=b"\0" * 768):
        return MSGS.Image(header=conv.header(MSGS, 0, "c"), height=height, width=width, encoding=encoding,
                          is_bigendian=0, step=step, data=MSGS.payload(data))  # fmt: skip

    def compressed(fmt, data):
        return MSGS.CompressedImage(header=conv.header(MSGS, 0, "c"), format=fmt, data=MSGS.payload(data))

    return [
        ("image", image(encoding="yuv422"), "unsupported image encoding"),
        ("image", image(data=b"\0" * 10), "bytes"),
        ("image", image(width=0), "outside"),
        ("image", image(width=20000, step=60000), "outside"),
        ("image", image(step=5), "step"),
        ("image", image(width=1, height=1, step=3, data=b"\0" * 3), "too small to ground"),
        ("image", image(width=640, height=1, step=1920, data=b"\0" * 1920), "too small to ground"),
        ("compressed", compressed("jpeg", b"\xff\xd8\xff\xe0broken"), "size in the header"),
        ("compressed", compressed("png", png_claiming(20000, 20000)), "would decode to 20000x20000"),
        (
            "compressed",
            compressed("png", cv2.imencode(".png", np.full((4096, 4096, 3), 9, np.uint8))[1].tobytes()),
            "times its size",
        ),  # a valid one-colour PNG: 50 MB from 60 KB
        (
            "compressed",
            compressed("png", cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes()),
            "too small to ground",
        ),
        ("compressed", compressed("png", png_claiming(64, 64)[:40]), "cannot decode"),
        ("compressed", compressed("png", b""), "no data"),
        ("compressed", compressed("h264", b"123"), "unsupported compressed"),
        ("instruction", "", "empty instruction"),
        ("instruction", "    ", "empty instruction"),
        ("instruction", "the cup " * 100, "characters ignored"),
        ("instruction", "the cup\x00\x07", "control characters"),
        ("ground", MSGS.GroundRequest(image=no_image, expression="", top_k=1), "empty expression"),
        ("ground", MSGS.GroundRequest(image=no_image, expression="the cup", top_k=1000), "top_k"),
        (
            "ground",
            MSGS.GroundRequest(image=image(encoding="bayer_rggb8"), expression="the cup", top_k=1),
            "unsupported",
        ),
        ("verify", MSGS.VerifyRequest(instruction="dance", goal_layout=empty, image=no_image), "supported"),
        (
            "verify",
            MSGS.VerifyRequest(instruction="", goal_layout=_layout_msg([(float("nan"), 1, 5, 5)]), image=no_image),
            "finite",
        ),
        (
            "verify",
            MSGS.VerifyRequest(instruction="", goal_layout=_layout_msg([(10, 10, 500, 50)]), image=no_image),
            "outside",
        ),
        ("verify", MSGS.VerifyRequest(instruction="", goal_layout=empty, image=no_image), "size"),
        (  # 3,000 same-label objects once bypassed the top-k cap (+1.5 GB, 7 s)
            "verify",
            MSGS.VerifyRequest(instruction="", goal_layout=_layout_msg([(1, 1, 5, 5)] * 3000), image=no_image),
            "at most 12",
        ),
        ("imagine", goal(layout=_layout_msg([(1, 1, 5, 5)], 40000, 40000)), "over 4096 a side"),
        ("imagine", goal(), "neither an instruction nor a layout"),
        ("imagine", goal(layout=_layout_msg([(10, 10, 5, 50)])), "degenerate"),
        ("imagine", goal(layout=_layout_msg([(1, 1, 5, 5)] * 13)), "at most 12"),
        ("imagine", goal(layout=_layout_msg([(1, 1, 5, 5)]), guidance=float("nan")), "finite"),
        ("imagine", goal(instruction="sing a song"), "supported"),
        ("imagine", goal(instruction="put the cup left of the plate \u2603" * 40), "characters ignored"),
    ]


@pytest.mark.parametrize(("kind", "value", "message"), _bad_cases())
def test_bad_inputs_are_reported_and_the_runtime_keeps_working(runtime: Runtime, kind, value, message) -> None:
    runtime.on_image(frame_msg(0), now=0.0)
    if kind in ("image", "compressed"):
        status = (runtime.on_image if kind == "image" else runtime.on_compressed)(value, now=1.0)
        assert message in status and runtime.counters.skipped == 1
    elif kind == "instruction":
        assert message in runtime.on_instruction(value)
    elif kind == "ground":
        response = runtime.ground(value)
        assert not response.success and message in response.message
    elif kind == "verify":
        response = runtime.verify(value)
        assert not response.success and message in response.message
    else:
        result = runtime.imagine(value)
        assert not result.success and message in result.message
    runtime.on_instruction("the bowl")  # and it still works afterwards
    runtime.on_image(frame_msg(1), now=2.0)
    assert runtime.step(now=2.0) is not None
    diagnostics = runtime.diagnostics(now=3.0)
    _roundtrip(diagnostics, "diagnostic_msgs/msg/DiagnosticArray")


def test_words_it_does_not_know_are_said_and_a_phrase_naming_no_known_object_is_not_grounded(
    runtime: Runtime,
) -> None:
    status = runtime.on_instruction("put the mug left of the scissors")
    assert runtime.phrases == [("the mug", "target"), ("the scissors", "anchor_0")]  # each grounding says why
    assert "grounding the cup;" in status  # the synonym in the vocabulary's words
    assert "not grounded: 'the scissors' names no object I know" in status and 'did not understand "scissors"' in status
    status = runtime.on_instruction("the red bottel")
    assert runtime.phrases == [] and "nothing to ground" in status and 'did you mean "bottle"?' in status
    status = runtime.on_instruction("the cup that is left of the zorp")
    assert "grounding the cup left of the zorp;" in status and 'did not understand "zorp"' in status
    runtime.on_image(frame_msg(0), now=0.0)
    no_image = conv.empty_image(MSGS, conv.header(MSGS, 0, ""))
    refused = runtime.ground(MSGS.GroundRequest(image=no_image, expression="LA TAZA ROJA", top_k=1))
    assert not refused.success and "names no object I know" in refused.message and not refused.detections.detections
    grounded = runtime.ground(MSGS.GroundRequest(image=no_image, expression="the mug", top_k=1))
    assert grounded.success and grounded.detections.detections[0].results[0].hypothesis.class_id == "the cup"
    runtime.on_instruction("the mug")
    runtime.on_image(frame_msg(1), now=1.0)
    published = runtime.step(now=1.0).detections.detections
    assert [d.results[0].hypothesis.class_id for d in published] == ["the cup"]
    planned = runtime.verify(MSGS.VerifyRequest(instruction="put the scissors left of the plate",
                                                goal_layout=conv.empty_layout(MSGS, conv.header(MSGS, 0, "")),
                                                image=no_image))  # fmt: skip
    assert not planned.success and "names no object I know" in planned.message


def test_ground_verify_and_imagine_refuse_a_referent_not_found_with_the_reason(runtime: Runtime) -> None:
    """At a threshold no box of the tiny model reaches: Ground answers no candidate and why, Verify cannot tell
    (naming what it could not find and why), Imagine plans nothing."""
    runtime.on_image(frame_msg(0), now=0.0)
    runtime.reconfigure(score_threshold=1.0)
    no_image = conv.empty_image(MSGS, conv.header(MSGS, 0, ""))
    ground = runtime.ground(MSGS.GroundRequest(image=no_image, expression="the cup", top_k=2))
    why = ("not sure enough", "nothing here is", "closer-look check")  # the tiny model's boxes are small
    assert not ground.success and any(w in ground.message for w in why) and not ground.detections.detections
    empty = conv.empty_layout(MSGS, conv.header(MSGS, 0, ""))
    verify = runtime.verify(MSGS.VerifyRequest(instruction="put the cup left of the plate", goal_layout=empty,
                                               image=no_image))  # fmt: skip
    assert verify.success and not verify.satisfied and verify.relations[0].verdict == 2  # cannot tell
    assert verify.message.startswith("cannot find the cup, the plate in the frame (the cup: ")
    goal = MSGS.ImagineGoal(instruction="put the cup above the plate", layout=empty, seed=1, guidance=0.0)
    imagined = runtime.imagine(goal)
    assert not imagined.success and imagined.message.startswith("cannot find 'the cup' in the image: ")
    assert any(w in imagined.message for w in why)


def test_a_grounding_of_an_instruction_changed_meanwhile_is_not_published(tiny_model) -> None:
    """A service holds the model while the stream's turn comes; the operator changes the instruction before
    the stream gets the model: its grounding (of the old phrases) is dropped, and the next one is of the new."""
    import threading

    runtime = Runtime(tiny_model, MSGS, RuntimeConfig(every_frames=1, score_threshold=0.0))
    runtime.on_instruction("the red cup")
    runtime.on_image(frame_msg(0), now=0.0)
    result = {}
    with runtime._model_lock:  # what a Ground service or an imagine goal does while it runs
        stream = threading.Thread(target=lambda: result.setdefault("out", runtime.step(now=0.0)))
        stream.start()
        stream.join(timeout=0.5)  # the stream has read its phrases and waits for the model
        runtime.on_instruction("the blue plate")
    stream.join(timeout=60)
    assert not stream.is_alive() and result["out"] is None
    runtime.on_image(frame_msg(1), now=1.0)
    out = runtime.step(now=1.0)
    assert [d.results[0].hypothesis.class_id for d in out.detections.detections] == ["the blue plate"]
