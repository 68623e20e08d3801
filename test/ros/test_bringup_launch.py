"""launch_testing: bring up the sim camera and the EchoGen node, send an instruction, expect
vision_msgs detections with the camera's header. Runs where ROS 2 is installed (colcon test);
skipped here, with the reason."""

import os
import time
import unittest

import pytest

pytest.importorskip("launch_testing", reason="ROS 2 (launch_testing, rclpy) is not installed")
rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed")

import launch_testing.actions  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

import launch  # noqa: E402


@pytest.mark.launch_test
def generate_test_description():
    bringup = os.path.join(get_package_share_directory("echogen_ros"), "launch", "bringup.launch.py")
    model = os.environ.get("ECHOGEN_TEST_MODEL", "")  # a model directory; empty: the embedded default
    return launch.LaunchDescription([
        launch.actions.IncludeLaunchDescription(
            PythonLaunchDescriptionSource(bringup),
            launch_arguments={"use_sim_camera": "true", "model": model}.items(),
        ),
        launch_testing.actions.ReadyToTest(),
    ])  # fmt: skip


class TestBringup(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("echogen_bringup_test")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_instruction_yields_detections_with_the_camera_header(self):
        received = []
        self.node.create_subscription(Detection2DArray, "detections", received.append, 10)
        publisher = self.node.create_publisher(String, "instruction", 10)
        deadline = time.time() + 120
        while time.time() < deadline and not received:
            publisher.publish(String(data="find the cup"))
            rclpy.spin_once(self.node, timeout_sec=0.5)
        self.assertTrue(received, "no detections within 120 s")
        self.assertEqual(received[0].header.frame_id, "sim_camera_optical")
        for detection in received[0].detections:
            self.assertEqual(detection.header.stamp, received[0].header.stamp)
