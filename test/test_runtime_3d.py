"""The runtime in space (issue 36), on rosbags message classes with the embedded model: fed the sim camera's
colour frame, depth, CameraInfo and /tf_static, a grounding gives detections_3d in the target frame near the
truth and, for a put-command, a goal pose on the table where the relation holds; Verify carries the goal pose;
without depth the stream stays 2D (quiet when no depth ever came, with the reason when the depth is unusable)."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest

from echogen_ros.interfaces import typestore
from echogen_ros.model.layout import box_iou
from echogen_ros.params import validate_all
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.core import Runtime, RuntimeConfig
from echogen_ros.runtime.depth import DepthFrame, DepthFrames
from echogen_ros.runtime.messages import TYPES, MessageTypes
from echogen_ros.runtime.sim_camera import SimCamera
from echogen_ros.world.camera import box3d

STORE = typestore("humble")
MSGS = MessageTypes.from_typestore(STORE)
PUT = "put the cup right of the plate"  # scene 2 of the test split (seed 0): one cup, one plate


def _wire(msg, name: str):
    """The message serialised and read back, as another process receives it."""
    return STORE.deserialize_cdr(STORE.serialize_cdr(msg, TYPES[name]), TYPES[name])


@pytest.fixture(scope="module")
def model():
    from echogen_ros.model.echogen import EchoGen

    return EchoGen.load()


@pytest.fixture(scope="module")
def shot():
    """(the sim camera, its colour frame of test scene 2 stamped 10.0 s, the world sample)."""
    camera = SimCamera(MSGS, seed=0, split="test", frames_per_scene=1)
    camera.count = 2
    image, _, sample = camera.next(10.0)
    return camera, image, sample


def _runtime(model, shot, depth_stamp: float | None = 10.01, encoding: str = "16UC1", **space) -> Runtime:
    camera, image, _ = shot
    runtime = Runtime(model, MSGS, RuntimeConfig(every_frames=1, every_seconds=0.0).changed(**space))
    assert runtime.on_camera_info(_wire(camera.camera_info(image.header), "CameraInfo")) is None
    assert runtime.on_transforms(_wire(camera.camera_to_table(0.0), "TFMessage")) is None
    if depth_stamp is not None:
        header = conv.header(MSGS, depth_stamp, image.header.frame_id)
        assert runtime.on_depth(_wire(camera.depth(header, encoding), "Image")) is None
    runtime.on_image(_wire(image, "Image"), now=0.0)
    return runtime


def _truth(sample, box2d):
    """The true 3D box (table frame) of the object whose image box best matches `box2d`."""
    best = max(zip(sample.scene.objects, sample.boxes()), key=lambda pair: box_iou(pair[1], box2d))
    assert box_iou(best[1], box2d) > 0.5, "the model grounded the wrong object: this scene no longer tests 3D"
    return box3d(best[0])


def test_a_put_command_gives_3d_boxes_near_the_truth_and_a_goal_pose_on_the_table(model, shot) -> None:
    _, image, sample = shot
    runtime = _runtime(model, shot, target_frame="table")
    runtime.on_instruction(PUT)
    early = runtime.step(now=0.0)  # before any listing: a goal pose blind to the other objects may land on one
    assert early.goal_pose is None and "no goal pose yet: the scene is being listed" in early.status, early.status
    assert runtime.list_step(now=0.0, whole=True).scene is not None
    runtime.on_image(image, now=0.5)
    out = runtime.step(now=0.5)
    assert out.status.startswith("grounded 2/2") and "2D only" not in out.status, out.status
    assert "; 3D in 'table'" in out.status and _diagnosed(runtime) == ("paired", "table")
    located, pose = _wire(out.detections_3d, "Detection3DArray"), _wire(out.goal_pose, "PoseStamped")
    assert (located.header.frame_id, located.header.stamp) == ("table", image.header.stamp)
    boxes2d = {d.id: conv.box_of(d.bbox) for d in out.detections.detections}
    assert sorted(d.id for d in located.detections) == sorted(boxes2d) == ["anchor_0", "target"]
    truths = {}
    for det in located.detections:
        truths[det.id] = truth = _truth(sample, boxes2d[det.id])
        c = det.bbox.center.position
        assert np.linalg.norm([c.x - truth.center[0], c.y - truth.center[1], c.z - truth.center[2]]) < 0.03
        assert det.bbox.size.z == pytest.approx(truth.size[2], abs=0.01)  # its height, from depth
    plate = truths["anchor_0"]
    assert (pose.header.frame_id, pose.header.stamp) == ("table", image.header.stamp)
    p = pose.pose.position
    assert p.z == pytest.approx(0.0, abs=0.002)  # on the table plane
    assert p.x > plate.center[0] + plate.size[0] / 2  # right of the plate in 3D: past its right edge
    assert abs(p.y - plate.center[1]) < plate.size[1] / 2 + 0.1  # beside it, not far above or below
    runtime.on_image(image, now=15.5)  # the listing started at 0 s: 15.5 s old, over scene_max_age_seconds (15)
    stale = runtime.step(now=15.5)
    assert stale.goal_pose is None and stale.detections_3d is not None
    assert "no goal pose: the scene was last listed 15.5 s ago (scene_max_age_seconds 15)" in stale.status, stale.status
    runtime.on_image(image, now=-2.5)  # the clock went back (a bag played again): a listing of another run
    back = runtime.step(now=-2.5)
    assert back.goal_pose is None and "stamped 2.5 s after this frame (the clock went back)" in back.status, back.status
    runtime.reconfigure(scene_max_age_seconds=0.0)  # 0: a listing of any age
    runtime.on_image(image, now=16.0)
    assert runtime.step(now=16.0).goal_pose is not None


def _diagnosed(runtime: Runtime) -> tuple[str, str]:
    """(depth, frame_3d) as /diagnostics says them."""
    values = {kv.key: kv.value for kv in _wire(runtime.diagnostics(0.0), "DiagnosticArray").status[0].values}
    return values["depth"], values["frame_3d"]


class _SlowCamera:
    """The model, grounding while a 30 fps depth camera sends 15 newer depth frames (a slow CPU grounding)."""

    def __init__(self, model, runtime: Runtime, depth) -> None:
        self.model, self.runtime, self.depth = model, runtime, depth

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def find_many(self, *args, **kwargs):
        found = self.model.find_many(*args, **kwargs)
        for k in range(1, 16):
            later = conv.header(MSGS, 10.0 + k / 30, self.depth.header.frame_id)
            self.runtime.on_depth(dataclasses.replace(self.depth, header=later))
        return found


def test_the_frames_depth_is_kept_for_it_while_newer_depth_arrives(model, shot) -> None:
    camera, image, _ = shot
    runtime = _runtime(model, shot, target_frame="table")
    runtime.model = _SlowCamera(model, runtime, camera.depth(image.header, "16UC1"))
    runtime.on_instruction(PUT)
    assert runtime.list_step(now=0.0, whole=True).scene is not None  # the goal pose keeps clear of what is listed
    out = runtime.step(now=0.0)
    assert "2D only" not in out.status and "no goal pose" not in out.status, out.status
    assert len(out.detections_3d.detections) == 2 and out.goal_pose.header.frame_id == "table"


def test_verify_carries_the_goal_pose_and_a_find_command_none(model, shot) -> None:
    _, image, _ = shot
    runtime = _runtime(model, shot, target_frame="table")
    empty = MSGS.Image(header=conv.header(MSGS, 0.0, ""), height=0, width=0, encoding="rgb8", is_bigendian=0,
                       step=0, data=MSGS.payload(b""))  # fmt: skip
    request = MSGS.VerifyRequest(instruction=PUT, goal_layout=conv.empty_layout(MSGS, image.header), image=empty)
    response = _wire(runtime.verify(request), "VerifyResponse")
    assert response.success and "no goal pose" not in response.message, response.message
    assert response.goal_pose.header.frame_id == "table" and response.goal_pose.header.stamp == image.header.stamp
    assert response.goal_pose.pose.position.z == pytest.approx(0.0, abs=0.002)
    request = MSGS.VerifyRequest(instruction="find the cup", goal_layout=request.goal_layout, image=empty)
    assert runtime.verify(request).goal_pose.header.frame_id == ""


def test_a_target_frame_set_live_moves_the_outputs_and_one_out_of_reach_says_so(model, shot) -> None:
    runtime = _runtime(model, shot, encoding="32FC1")
    runtime.on_instruction("the cup")
    out = runtime.step(now=0.0)
    assert out.detections_3d.header.frame_id == "sim_camera_optical" and out.goal_pose is None
    assert out.detections_3d.detections[0].bbox.center.position.z > 0.7  # down the optical axis to the cup
    runtime.reconfigure(target_frame="base_link")
    runtime.on_image(shot[1], now=1.0)
    out = runtime.step(now=1.0)
    assert out.detections_3d.header.frame_id == "sim_camera_optical"
    assert "no transform from 'sim_camera_optical' to 'base_link' yet" in out.status
    assert _diagnosed(runtime)[1].startswith("sim_camera_optical; no transform from 'sim_camera_optical'")
    with pytest.raises(ValueError, match="depth_near < depth_far"):
        runtime.reconfigure(depth_near=2.0, depth_far=1.0)


def test_without_usable_depth_the_stream_stays_2d(model, shot) -> None:
    runtime = _runtime(model, shot, depth_stamp=None, target_frame="table")  # a camera without depth
    runtime.on_instruction(PUT)
    out = runtime.step(now=0.0)
    assert out.detections is not None and out.detections_3d is None and out.goal_pose is None
    assert "2D only" not in out.status and "goal pose" not in out.status  # quiet: there is no depth topic
    assert _diagnosed(runtime) == ("none received: 2D only", "")
    runtime = _runtime(model, shot, depth_stamp=11.0, target_frame="table")  # depth 1 s from the frame
    runtime.on_instruction(PUT)
    out = runtime.step(now=0.0)
    assert out.detections_3d is None and out.goal_pose is None
    assert "2D only: no depth frame within 0.05 s of the colour frame" in out.status and "3D in" not in out.status
    depth, frame = _diagnosed(runtime)
    assert depth.startswith("not paired: no depth frame within 0.05 s of the colour frame") and frame == ""


def test_space_parameters_are_checked_together() -> None:
    assert validate_all({"depth_near": 0.3, "depth_far": 0.2}) == "depth_near=0.3 must be below depth_far=0.2"
    assert "no leading '/'" in validate_all({"target_frame": "/base_link"})
    assert validate_all({"target_frame": "base_link", "sync_tolerance": 0.1, "depth_far": 4.0}) is None
    assert RuntimeConfig().changed(target_frame="table", guidance=2.0).space.target_frame == "table"


def test_a_colour_frame_waits_briefly_for_its_depth_on_the_way() -> None:
    """A driver publishes a frame's depth just after its colour image: the pairing waits up to `wait` for one
    within the tolerance (only once depth has come at all), else says how near the nearest was."""
    frames, metres = DepthFrames(), np.ones((2, 2), np.float32)
    assert frames.nearest(10.0, 0.05, wait=5.0) == (None, "no depth frame received")  # no depth: no wait
    frames.put(DepthFrame(metres, conv.header(MSGS, 9.9, "cam")))  # the previous frame's
    late = threading.Timer(0.2, frames.put, [DepthFrame(metres, conv.header(MSGS, 10.0, "cam"))])
    start = time.monotonic()
    late.start()
    paired, why = frames.nearest(10.0, 0.05, wait=5.0)
    assert why == "" and paired.header.stamp.sec == 10 and time.monotonic() - start < 4.0
    paired, why = frames.nearest(20.0, 0.05, wait=0.1)
    assert paired is None and why == "no depth frame within 0.05 s of the colour frame (nearest 10.000 s)"
