"""`sim_camera`: publishes tabletop-world frames, their depth (registered, stamped as the frame), CameraInfo,
the camera → table transform on /tf_static and each frame's ground truth (an echogen_ros/Layout on
`~/ground_truth`, stamped as the frame), so the system runs and is scored live with no hardware."""

from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from tf2_ros.static_transform_broadcaster import StaticTransformBroadcaster

from echogen_ros.msg import Layout
from echogen_ros.ros_main import run
from echogen_ros.runtime.messages import MessageTypes
from echogen_ros.runtime.sim_camera import SimCamera


class SimCameraNode(Node):
    def __init__(self) -> None:
        super().__init__("sim_camera")
        fps = self.declare_parameter("fps", 10.0).value
        self.camera = SimCamera(
            MessageTypes.from_rclpy(),
            width=self.declare_parameter("width", 640).value,
            height=self.declare_parameter("height", 480).value,
            seed=self.declare_parameter("seed", 0).value,
            split=self.declare_parameter("split", "test").value,
            frames_per_scene=self.declare_parameter("frames_per_scene", 50).value,
            frame_id=self.declare_parameter("frame_id", "sim_camera_optical").value,
        )
        encoding = self.depth_encoding = self.declare_parameter("depth_encoding", "32FC1").value  # RealSense: 16UC1
        if encoding not in ("32FC1", "16UC1"):
            raise ValueError(f"depth_encoding must be 32FC1 (metres) or 16UC1 (millimetres), not {encoding!r}")
        self.image = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self.depth = self.create_publisher(Image, "depth", qos_profile_sensor_data)
        self.info = self.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        self.truth = self.create_publisher(Layout, "~/ground_truth", QoSProfile(depth=10))
        self.static_tf = StaticTransformBroadcaster(self)
        self.static_tf.sendTransform(self.camera.camera_to_table(self._seconds()).transforms)
        self.create_timer(1.0 / max(fps, 0.1), self._publish)

    def _seconds(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    def _publish(self) -> None:
        image, info, sample = self.camera.next(self._seconds())
        self.truth.publish(self.camera.ground_truth(sample, image.header))
        self.image.publish(image)
        self.depth.publish(self.camera.depth(image.header, self.depth_encoding))
        self.info.publish(info)


def main(args: list[str] | None = None) -> None:
    run(SimCameraNode, args)


if __name__ == "__main__":
    main()
