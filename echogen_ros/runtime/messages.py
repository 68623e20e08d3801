"""Message classes by short name, from rclpy packages (in the node) or a rosbags typestore (tests, bags).

Both have the same field names; rosbags classes need every field, so all construction names every field.
Only the uint8[] payload differs: numpy arrays for rosbags, array.array('B') for rclpy.
"""

from __future__ import annotations

import array
import importlib
from collections.abc import Callable

import numpy as np

TYPES = {
    "Time": "builtin_interfaces/msg/Time",
    "Header": "std_msgs/msg/Header",
    "String": "std_msgs/msg/String",
    "Image": "sensor_msgs/msg/Image",
    "CompressedImage": "sensor_msgs/msg/CompressedImage",
    "CameraInfo": "sensor_msgs/msg/CameraInfo",
    "RegionOfInterest": "sensor_msgs/msg/RegionOfInterest",
    "Point": "geometry_msgs/msg/Point",
    "Quaternion": "geometry_msgs/msg/Quaternion",
    "Pose": "geometry_msgs/msg/Pose",
    "PoseWithCovariance": "geometry_msgs/msg/PoseWithCovariance",
    "PoseStamped": "geometry_msgs/msg/PoseStamped",
    "Vector3": "geometry_msgs/msg/Vector3",
    "Transform": "geometry_msgs/msg/Transform",
    "TransformStamped": "geometry_msgs/msg/TransformStamped",
    "TFMessage": "tf2_msgs/msg/TFMessage",
    "Point2D": "vision_msgs/msg/Point2D",
    "Pose2D": "vision_msgs/msg/Pose2D",
    "BoundingBox2D": "vision_msgs/msg/BoundingBox2D",
    "ObjectHypothesis": "vision_msgs/msg/ObjectHypothesis",
    "ObjectHypothesisWithPose": "vision_msgs/msg/ObjectHypothesisWithPose",
    "Detection2D": "vision_msgs/msg/Detection2D",
    "Detection2DArray": "vision_msgs/msg/Detection2DArray",
    "BoundingBox3D": "vision_msgs/msg/BoundingBox3D",
    "Detection3D": "vision_msgs/msg/Detection3D",
    "Detection3DArray": "vision_msgs/msg/Detection3DArray",
    "KeyValue": "diagnostic_msgs/msg/KeyValue",
    "DiagnosticStatus": "diagnostic_msgs/msg/DiagnosticStatus",
    "DiagnosticArray": "diagnostic_msgs/msg/DiagnosticArray",
    "LabeledBox": "echogen_ros/msg/LabeledBox",
    "Layout": "echogen_ros/msg/Layout",
    "RelationCheck": "echogen_ros/msg/RelationCheck",
    "GroundRequest": "echogen_ros/srv/Ground_Request",
    "GroundResponse": "echogen_ros/srv/Ground_Response",
    "VerifyRequest": "echogen_ros/srv/Verify_Request",
    "VerifyResponse": "echogen_ros/srv/Verify_Response",
    "ImagineGoal": "echogen_ros/action/Imagine_Goal",
    "ImagineResult": "echogen_ros/action/Imagine_Result",
    "ImagineFeedback": "echogen_ros/action/Imagine_Feedback",
}


class MessageTypes:
    """`msgs.Image(...)`, `msgs.payload(bytes)`: one namespace for either backend."""

    def __init__(
        self,
        classes: dict[str, type],
        payload: Callable[[bytes], object],
        byte: Callable[[int], object],
        floats: Callable[[list[float]], object],
    ) -> None:
        self._classes = classes
        self.floats = floats  # list → the backend's float64[] value
        self.payload = payload  # bytes → the backend's uint8[] value
        self.byte = byte  # int → the backend's `byte` value (DiagnosticStatus.level)

    def __getattr__(self, name: str) -> type:
        try:
            return self.__dict__["_classes"][name]
        except KeyError:
            raise AttributeError(f"no message class {name!r}") from None

    @classmethod
    def from_typestore(cls, store) -> MessageTypes:
        classes = {name: store.types[full] for name, full in TYPES.items()}
        return cls(
            classes,
            lambda data: np.frombuffer(bytes(data), dtype=np.uint8).copy(),
            int,
            lambda values: np.asarray(values, dtype=np.float64),
        )

    @classmethod
    def from_rclpy(cls) -> MessageTypes:
        """Classes from the installed ROS 2 Python packages (rosidl-generated)."""
        classes = {}
        for name, full in TYPES.items():
            package, kind, leaf = full.split("/")
            if kind == "msg":
                classes[name] = getattr(importlib.import_module(f"{package}.msg"), leaf)
            else:
                base, part = leaf.rsplit("_", 1)
                classes[name] = getattr(getattr(importlib.import_module(f"{package}.{kind}"), base), part)
        return cls(
            classes, lambda data: array.array("B", bytes(data)), lambda n: bytes([n]), lambda v: [float(x) for x in v]
        )
