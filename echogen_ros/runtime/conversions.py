"""Building and reading ROS messages (vision_msgs, sensor_msgs, echogen_ros) for both backends.

Every constructor names every field (rosbags classes have no defaults); headers are copied from the
camera frame into every output derived from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from echogen_ros.model.layout import Detection, Layout, LayoutObject
from echogen_ros.runtime.messages import MessageTypes
from echogen_ros.runtime.transforms import quaternion_xyzw

IDENTITY_COVARIANCE = np.zeros(36, dtype=np.float64)


def stamp(msgs: MessageTypes, seconds: float):
    sec = int(seconds)
    return msgs.Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def header(msgs: MessageTypes, seconds: float, frame_id: str):
    return msgs.Header(stamp=stamp(msgs, seconds), frame_id=frame_id)


def copy_header(msgs: MessageTypes, source):
    """A new Header with the source's stamp and frame_id (never the same object)."""
    return msgs.Header(stamp=msgs.Time(sec=int(source.stamp.sec), nanosec=int(source.stamp.nanosec)),
                       frame_id=str(source.frame_id))  # fmt: skip


def bbox(msgs: MessageTypes, box: Sequence[float]):
    x1, y1, x2, y2 = (float(v) for v in box)
    center = msgs.Pose2D(position=msgs.Point2D(x=(x1 + x2) / 2, y=(y1 + y2) / 2), theta=0.0)
    return msgs.BoundingBox2D(center=center, size_x=x2 - x1, size_y=y2 - y1)


def box_of(b) -> tuple[float, float, float, float]:
    """vision_msgs/BoundingBox2D → (x1, y1, x2, y2)."""
    cx, cy, w, h = float(b.center.position.x), float(b.center.position.y), float(b.size_x), float(b.size_y)
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def _pose(msgs: MessageTypes):
    pose = msgs.Pose(position=msgs.Point(x=0.0, y=0.0, z=0.0), orientation=msgs.Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))
    return msgs.PoseWithCovariance(pose=pose, covariance=IDENTITY_COVARIANCE.copy())


def detection(msgs: MessageTypes, source_header, found: Detection, class_id: str, track_id: str = ""):
    hypothesis = msgs.ObjectHypothesisWithPose(
        hypothesis=msgs.ObjectHypothesis(class_id=class_id, score=float(found.score)), pose=_pose(msgs)
    )
    return msgs.Detection2D(header=copy_header(msgs, source_header), results=[hypothesis],
                            bbox=bbox(msgs, found.box), id=track_id)  # fmt: skip


def detection_array(msgs: MessageTypes, source_header, items: Sequence[tuple[str, str, Detection]]):
    """Detection2DArray of (class_id, id, detection) with the frame's header everywhere."""
    return msgs.Detection2DArray(
        header=copy_header(msgs, source_header),
        detections=[detection(msgs, source_header, d, class_id, track) for class_id, track, d in items],
    )


def image_message(msgs: MessageTypes, rgb: np.ndarray, source_header):
    """RGB uint8 (H, W, 3) → sensor_msgs/Image rgb8."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width = rgb.shape[:2]
    return msgs.Image(header=copy_header(msgs, source_header), height=height, width=width, encoding="rgb8",
                      is_bigendian=0, step=width * 3, data=msgs.payload(rgb.tobytes()))  # fmt: skip


def empty_image(msgs: MessageTypes, source_header):
    return msgs.Image(header=copy_header(msgs, source_header), height=0, width=0, encoding="rgb8",
                      is_bigendian=0, step=0, data=msgs.payload(b""))  # fmt: skip


def layout_message(msgs: MessageTypes, layout: Layout, source_header):
    objects = [msgs.LabeledBox(label=o.label, bbox=bbox(msgs, o.box)) for o in layout.objects]
    return msgs.Layout(header=copy_header(msgs, source_header), caption=layout.caption, width=layout.width,
                       height=layout.height, objects=objects)  # fmt: skip


def empty_layout(msgs: MessageTypes, source_header):
    return msgs.Layout(header=copy_header(msgs, source_header), caption="", width=0, height=0, objects=[])


def layout_of(msg) -> Layout:
    """echogen_ros/Layout → Layout (not yet validated)."""
    objects = tuple(LayoutObject(str(o.label), box_of(o.bbox)) for o in msg.objects)
    return Layout(int(msg.width), int(msg.height), objects, str(msg.caption))


def string(msgs: MessageTypes, text: str):
    return msgs.String(data=text)


def depth_message(msgs: MessageTypes, metres: np.ndarray, source_header, encoding: str = "32FC1"):
    """(H, W) metres → sensor_msgs/Image: 32FC1 metres (NaN: no reading) or 16UC1 millimetres (0: no reading)."""
    if encoding == "32FC1":
        pixels = np.ascontiguousarray(metres, dtype="<f4")
    elif encoding == "16UC1":
        finite = np.nan_to_num(metres, nan=0.0, posinf=0.0, neginf=0.0)
        pixels = np.clip(np.rint(finite * 1000.0), 0, 65535).astype("<u2")
    else:
        raise ValueError(f"depth encoding must be 32FC1 or 16UC1, got {encoding!r}")
    height, width = pixels.shape
    return msgs.Image(header=copy_header(msgs, source_header), height=height, width=width, encoding=encoding,
                      is_bigendian=0, step=width * pixels.itemsize, data=msgs.payload(pixels.tobytes()))  # fmt: skip


def pose(msgs: MessageTypes, position: Sequence[float], quaternion_xyzw: Sequence[float] = (0.0, 0.0, 0.0, 1.0)):
    x, y, z = (float(v) for v in position)
    qx, qy, qz, qw = (float(v) for v in quaternion_xyzw)
    return msgs.Pose(position=msgs.Point(x=x, y=y, z=z), orientation=msgs.Quaternion(x=qx, y=qy, z=qz, w=qw))


def pose_stamped(msgs: MessageTypes, header, position: Sequence[float] | None):
    """geometry_msgs/PoseStamped at `position` in `header`'s frame; None → frame_id "" (no pose)."""
    if position is None:
        return msgs.PoseStamped(header=msgs.Header(stamp=copy_header(msgs, header).stamp, frame_id=""),
                                pose=pose(msgs, (0.0, 0.0, 0.0)))  # fmt: skip
    return msgs.PoseStamped(header=copy_header(msgs, header), pose=pose(msgs, position))


def detection_3d_array(msgs: MessageTypes, source_header, items: Sequence[tuple[str, str, float, object]]):
    """Detection3DArray of (class_id, id, score, Box3D) with `source_header` (the frame the boxes are in)."""
    detections = []
    for class_id, track_id, score, box in items:
        hypothesis = msgs.ObjectHypothesisWithPose(
            hypothesis=msgs.ObjectHypothesis(class_id=class_id, score=float(score)), pose=_pose(msgs)
        )
        sx, sy, sz = (float(v) for v in box.size)
        bbox = msgs.BoundingBox3D(center=pose(msgs, box.center), size=msgs.Vector3(x=sx, y=sy, z=sz))
        detections.append(msgs.Detection3D(header=copy_header(msgs, source_header), results=[hypothesis], bbox=bbox,
                                           id=track_id))  # fmt: skip
    return msgs.Detection3DArray(header=copy_header(msgs, source_header), detections=detections)


def transform_stamped(msgs: MessageTypes, header, child_frame_id: str, matrix: np.ndarray):
    """geometry_msgs/TransformStamped: the 4×4 `matrix` takes `child_frame_id` points into `header.frame_id`."""
    x, y, z = (float(v) for v in matrix[:3, 3])
    qx, qy, qz, qw = quaternion_xyzw(matrix)
    rotation = msgs.Quaternion(x=qx, y=qy, z=qz, w=qw)
    transform = msgs.Transform(translation=msgs.Vector3(x=x, y=y, z=z), rotation=rotation)
    return msgs.TransformStamped(header=copy_header(msgs, header), child_frame_id=child_frame_id, transform=transform)
