"""3D from depth, ROS-free: depth messages to metres, pairing by stamp, a grounded box measured in space (or
refused with the reason), goal points on the surface, and transforms composed through a tree."""

from __future__ import annotations

import math

import numpy as np
import pytest

from echogen_ros.interfaces import typestore
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.depth import DepthFrame, DepthFrames, to_metres
from echogen_ros.runtime.images import ImageError
from echogen_ros.runtime.messages import MessageTypes
from echogen_ros.runtime.space import DepthRange, measure, surface_point
from echogen_ros.runtime.transforms import TransformTree, quaternion_xyzw
from echogen_ros.world.camera import CAMERA_TO_TABLE, box3d, pinhole
from echogen_ros.world.dataset import world_sample
from echogen_ros.world.render import pixel_box

MSGS = MessageTypes.from_typestore(typestore("humble"))
RANGE = DepthRange()


def depth_msg(values: np.ndarray, encoding: str, stamp: float = 1.0, big_endian: bool = False):
    data = values.astype(values.dtype.newbyteorder(">" if big_endian else "<")).tobytes()
    height, width = values.shape
    return MSGS.Image(header=conv.header(MSGS, stamp, "cam"), height=height, width=width, encoding=encoding,
                      is_bigendian=int(big_endian), step=width * values.itemsize, data=MSGS.payload(data))  # fmt: skip


def test_depth_messages_become_metres_with_no_reading_as_nan() -> None:
    mm = np.array([[0, 800], [65535, 750]], np.uint16)
    for big in (False, True):
        got = to_metres(depth_msg(mm, "16UC1", big_endian=big))
        assert np.isnan(got[0, 0]) and got[0, 1] == pytest.approx(0.8) and got[1, 1] == pytest.approx(0.75)
    metres = np.array([[np.nan, 0.0], [np.inf, 1.25]], np.float32)
    got = to_metres(depth_msg(metres, "32FC1"))
    assert np.isnan(got[:, 0]).all() and np.isnan(got[0, 1]) and got[1, 1] == 1.25
    with pytest.raises(ImageError, match="not depth"):
        to_metres(depth_msg(np.zeros((2, 2), np.uint8), "mono8"))


def test_a_colour_frame_pairs_with_the_nearest_depth_within_the_tolerance() -> None:
    frames = DepthFrames(keep=3)
    assert frames.nearest(1.0, 0.05) == (None, "no depth frame received")
    for stamp in (0.9, 1.0, 1.1, 1.2):
        frames.put(DepthFrame(np.zeros((2, 2), np.float32), conv.header(MSGS, stamp, "cam")))
    best, why = frames.nearest(1.13, 0.05)
    assert why == "" and best.header.stamp.nanosec == 100_000_000
    best, why = frames.nearest(0.9, 0.05)  # dropped: only the last three are kept
    assert best is None and "nearest 0.100 s" in why


def _scene(index: int = 0):
    sample = world_sample(7, index, "heldout")
    return sample, sample.depth(), pinhole()


def test_a_grounded_box_is_measured_to_its_true_3d_box() -> None:
    for index in range(6):
        sample, depth, camera = _scene(index)
        for obj in sample.scene.objects:
            placed = measure(pixel_box(obj, 640, 480), depth, camera, RANGE, "optical")
            assert placed.reason == "" and placed.box.frame == "optical"
            got, truth = placed.box.transformed(CAMERA_TO_TABLE, "table"), box3d(obj)
            assert np.allclose(got.center, truth.center, atol=0.002) and np.allclose(got.size, truth.size, atol=0.003)


def test_missing_or_invalid_depth_gives_no_box_and_the_reason() -> None:
    sample, depth, camera = _scene()
    box = pixel_box(sample.scene.objects[0], 640, 480)
    x1, y1, x2, y2 = box
    cases = {"zeros": 0.0, "NaN": np.nan, "too near": 0.05, "too far": 20.0}
    for value in cases.values():
        broken = depth.copy()
        broken[y1:y2, x1:x2] = value
        placed = measure(box, broken, camera, RANGE)
        assert placed.box is None and "of the box has depth in 0.1..10 m" in placed.reason
    assert "registered" in measure(box, depth[:, :320], camera, RANGE).reason
    assert measure((0, 0, 640, 480), depth, camera, RANGE).reason == "no surface around the box to stand on"
    empty = np.full_like(depth, 0.8)
    assert "stands out" in measure(box, empty, camera, RANGE).reason
    assert measure((700, 10, 720, 20), depth, camera, RANGE).reason == "the box is outside the depth image"


def test_a_goal_point_stands_on_the_surface_under_the_box_centre() -> None:
    _, _, camera = _scene()
    table = np.full((480, 640), 0.8, np.float32)
    point, why = surface_point((320, 240, 384, 304), 0.1, table, camera, RANGE)
    assert why == "" and point == pytest.approx([0.035, 0.035, 0.8])  # 32 px off centre at the top (0.7 m)
    table[:] = np.nan
    point, why = surface_point((320, 240, 384, 304), 0.1, table, camera, RANGE)
    assert point is None and why == "no surface at the goal to stand on"


def _stamped(parent: str, child: str, xyz, quaternion_xyzw_):
    x, y, z, w = quaternion_xyzw_
    transform = MSGS.Transform(translation=MSGS.Vector3(x=xyz[0], y=xyz[1], z=xyz[2]),
                               rotation=MSGS.Quaternion(x=x, y=y, z=z, w=w))  # fmt: skip
    return MSGS.TransformStamped(header=conv.header(MSGS, 1.0, parent), child_frame_id=child, transform=transform)


def test_transforms_compose_through_the_tree() -> None:
    tree = TransformTree()
    half = math.sqrt(0.5)
    tree.add(_stamped("table", "camera_optical", (0, 0, 0.8), (1, 0, 0, 0)))  # half turn about x, 0.8 m up
    tree.add(_stamped("world", "table", (1.0, 2.0, 0.0), (0, 0, half, half)))  # quarter turn about z
    assert np.allclose(tree.lookup("table", "camera_optical"), CAMERA_TO_TABLE)
    point = tree.lookup("world", "camera_optical") @ np.array([0.1, 0.0, 0.7, 1.0])  # 0.1 m along optical x
    assert point[:3] == pytest.approx([1.0, 2.1, 0.1])  # table (0.1, 0, 0.1) → world: x becomes y
    back = tree.lookup("camera_optical", "world") @ np.append(point[:3], 1.0)
    assert back[:3] == pytest.approx([0.1, 0.0, 0.7])
    assert tree.lookup("base_link", "camera_optical") is None
    assert quaternion_xyzw(CAMERA_TO_TABLE) == pytest.approx((1, 0, 0, 0))
    with pytest.raises(ValueError):
        tree.add(_stamped("table", "table", (0, 0, 0), (0, 0, 0, 1)))
