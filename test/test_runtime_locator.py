"""The sim camera's depth, CameraInfo and /tf_static, through the Locator, on rosbags message classes (serialised
and read back as a bag would carry them): grounded boxes become Detection3DArray in the target frame, a goal box
a PoseStamped on the table, and a frame without usable depth stays 2D with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from echogen_ros.interfaces import typestore
from echogen_ros.model.layout import Detection
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.locator import Locator, SpaceConfig
from echogen_ros.runtime.messages import TYPES, MessageTypes
from echogen_ros.runtime.sim_camera import SimCamera
from echogen_ros.world.camera import box3d

STORE = typestore("humble")
MSGS = MessageTypes.from_typestore(STORE)


def _wire(msg, name: str):
    """The message serialised and read back, as a bag or another process would see it."""
    return STORE.deserialize_cdr(STORE.serialize_cdr(msg, TYPES[name]), TYPES[name])


def _fed(encoding: str, target_frame: str = "table", tolerance: float = 0.05):
    camera = SimCamera(MSGS, seed=7, split="heldout", frames_per_scene=1)
    image, info, sample = camera.next(10.0)
    locator = Locator(MSGS, SpaceConfig(target_frame=target_frame, sync_tolerance=tolerance))
    assert locator.on_camera_info(_wire(info, "CameraInfo")) is None
    depth_header = conv.header(MSGS, 10.02, image.header.frame_id)  # 20 ms after the colour frame
    assert locator.on_depth(_wire(camera.depth(depth_header, encoding), "Image")) is None
    assert locator.on_transforms(_wire(camera.camera_to_table(0.0), "TFMessage")) is None
    return camera, image, sample, locator


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_grounded_boxes_are_published_in_3d_in_the_target_frame(encoding: str) -> None:
    camera, image, sample, locator = _fed(encoding)
    items = [(o.label, f"object_{i}", Detection(b, 0.9, o.label))
             for i, (o, b) in enumerate(zip(sample.scene.objects, sample.boxes()))]  # fmt: skip
    found, note = locator.locate(image.header, items)
    found = _wire(found, "Detection3DArray")
    assert note == "" and found.header.frame_id == "table" and found.header.stamp == image.header.stamp
    assert len(found.detections) == len(items)
    for det, obj in zip(found.detections, sample.scene.objects):
        c, s, truth = det.bbox.center.position, det.bbox.size, box3d(obj)
        assert det.header.frame_id == "table" and det.results[0].hypothesis.class_id == obj.label
        assert np.allclose([c.x, c.y, c.z], truth.center, atol=0.003)
        assert np.allclose([s.x, s.y, s.z], truth.size, atol=0.003)


def test_without_a_transform_the_boxes_stay_in_the_optical_frame_and_say_so() -> None:
    _, image, sample, locator = _fed("32FC1", target_frame="base_link")
    found, note = locator.locate(image.header, [("cup", "target", Detection(sample.boxes()[0], 0.9, "cup"))])
    assert found.header.frame_id == "sim_camera_optical"
    assert "no transform from 'sim_camera_optical' to 'base_link'" in note
    assert found.detections[0].bbox.center.position.z > 0.7  # along the optical axis, down to the object


def test_a_goal_box_becomes_a_pose_on_the_table() -> None:
    _, image, sample, locator = _fed("16UC1")
    target = sample.boxes()[0]
    goal = (20.0, 400.0, 20.0 + target[2] - target[0], 400.0 + target[3] - target[1])  # bottom left: free table?
    pose, note = locator.goal_pose(image.header, goal, target)
    pose = _wire(pose, "PoseStamped")
    assert note == "" and pose.header.frame_id == "table"
    assert pose.pose.position.z == pytest.approx(0.0, abs=0.002)  # on the table plane
    assert pose.pose.position.x < -0.2 and pose.pose.position.y < -0.1  # left of and nearer than the centre


def test_no_usable_depth_leaves_2d_only_with_the_reason() -> None:
    _, image, sample, locator = _fed("32FC1", tolerance=0.01)  # the depth frame is 20 ms away
    item = [("cup", "target", Detection(sample.boxes()[0], 0.9, "cup"))]
    found, note = locator.locate(image.header, item)
    assert found is None and note.startswith("2D only: no depth frame within 0.01 s")
    pose, note = locator.goal_pose(image.header, (0, 0, 10, 10), sample.boxes()[0])
    assert pose.header.frame_id == "" and note.startswith("no goal pose: no depth frame")
    camera, image, sample, locator = _fed("32FC1")
    zeros = conv.depth_message(MSGS, np.zeros((480, 640), np.float32), image.header)
    assert locator.on_depth(zeros) is None  # the same stamp as the frame: nearer than the good one
    found, note = locator.locate(image.header, item)
    assert found.detections == [] and "'cup' 2D only: 0% of the box has depth" in note
    assert locator.on_depth(conv.image_message(MSGS, np.zeros((4, 4, 3), np.uint8), image.header)).startswith(
        "skipped depth frame: depth encoding 'rgb8' is not depth"
    )
    assert Locator(MSGS).view(image.header) == (None, "no camera_info received")


def test_sim_camera_info_carries_the_world_cameras_k_and_p() -> None:
    camera = SimCamera(MSGS, width=320, height=240)
    _, info, _ = camera.next(1.0)
    info = _wire(info, "CameraInfo")
    assert list(info.k) == [320.0, 0, 159.5, 0, 320.0, 119.5, 0, 0, 1]
    assert list(info.p) == [320.0, 0, 159.5, 0, 0, 320.0, 119.5, 0, 0, 0, 1, 0]
    tf = _wire(camera.camera_to_table(0.0), "TFMessage").transforms[0]
    assert (tf.header.frame_id, tf.child_frame_id, tf.transform.translation.z) == ("table", "sim_camera_optical", 0.8)
