"""launch_testing: the node in space (issue 36) on real ROS 2. The sim camera (scene 0 of the test split, seed
0, held still) publishes colour, 16UC1 depth, CameraInfo and the camera → table transform on /tf_static; the
node (target_frame table, the embedded model or ECHOGEN_TEST_MODEL) is told "put the white cup right of the
blue plate". Checked: the transform through tf2_ros (a Buffer and TransformListener here); detections_3d with
the colour frame's stamp, in the table frame, centres within 3 cm of the world's truth (/diagnostics: depth
paired, frame_3d table); goal_pose on the table
right of the plate; the Verify service's and the Imagine action's goal_pose the same; a clean exit."""

import os
import sys
import unittest

import launch_ros.actions
import launch_testing.actions
import numpy as np
import pytest
import rclpy
import rclpy.time
from action_msgs.msg import GoalStatus
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import String
from tf2_ros.buffer import Buffer
from tf2_ros.transform_listener import TransformListener
from vision_msgs.msg import Detection3DArray

import launch

sys.path.insert(0, os.path.dirname(__file__))
from echogen_ros.action import Imagine  # noqa: E402
from echogen_ros.srv import Verify  # noqa: E402
from probe import Probe, clean_exit_output, stamp_key  # noqa: E402

from echogen_ros.world.camera import box3d  # noqa: E402
from echogen_ros.world.dataset import world_sample  # noqa: E402

PUT = "put the white cup right of the blue plate"
SAMPLE = world_sample(0, 0, "test")  # what the sim camera shows: one white cup, one blue plate
TRUTH = {label: box3d(obj) for label, obj in zip(SAMPLE.labels(), SAMPLE.scene.objects)}


def _values(diagnostics) -> dict:
    return {kv.key: kv.value for kv in diagnostics.status[0].values}


@pytest.mark.launch_test
def generate_test_description():
    camera = launch_ros.actions.Node(
        package="echogen_ros", executable="sim_camera", name="sim_camera", output="screen",
        parameters=[{"fps": 2.0, "seed": 0, "split": "test", "frames_per_scene": 1000000, "depth_encoding": "16UC1"}],
    )  # fmt: skip
    node = launch_ros.actions.Node(
        package="echogen_ros", executable="echogen_node", name="echogen", output="screen",
        parameters=[{"grounding_every_frames": 1, "target_frame": "table",
                     "model_path": os.environ.get("ECHOGEN_TEST_MODEL", "")}],
    )  # fmt: skip
    return launch.LaunchDescription([camera, node, launch_testing.actions.ReadyToTest()])


class TestSpace(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.probe = Probe()
        cls.located, cls.poses = [], []
        cls.probe.node.create_subscription(Detection3DArray, "detections_3d", cls.located.append, 10)
        cls.probe.node.create_subscription(PoseStamped, "goal_pose", cls.poses.append, 10)
        cls.tf = Buffer()
        cls.listener = TransformListener(cls.tf, cls.probe.node)
        state = cls.probe.spin_until(lambda: cls.probe.lifecycle_state() == "active" or None, 120)
        assert state, "the echogen node did not become active within 120 s"
        seen = cls.probe.spin_until(lambda: any(repr(PUT) in s for s in cls.probe.status), 30,
                                    every=lambda: cls.probe.instruction.publish(String(data=PUT)))  # fmt: skip
        assert seen, "the node never confirmed the instruction"

    @classmethod
    def tearDownClass(cls):
        cls.listener.unregister()
        cls.probe.destroy()
        rclpy.shutdown()

    def stamped_as_a_frame(self, messages: list, timeout: float = 300.0):
        """The first message whose stamp is a colour frame's (the sim camera's truth carries each frame's)."""
        found = self.probe.spin_until(
            lambda: next((m for m in messages if stamp_key(m.header) in self.probe.truth), None), timeout
        )
        self.assertIsNotNone(found, f"none stamped as a colour frame in {timeout} s; status: {self.probe.status[-3:]}")
        return found

    def assert_goal_on_the_table_right_of_the_plate(self, pose, said: str = "") -> None:
        plate, p = TRUTH["blue plate"], pose.pose.position
        self.assertEqual(pose.header.frame_id, "table", said)
        self.assertAlmostEqual(p.z, 0.0, delta=0.002)  # on the table plane
        self.assertGreater(p.x, plate.center[0] + plate.size[0] / 2)  # past the plate's right edge

    def test_1_the_camera_to_table_transform_reaches_tf2(self):
        ready = self.probe.spin_until(lambda: self.tf.can_transform("table", "sim_camera_optical", rclpy.time.Time()),
                                      30)  # fmt: skip
        self.assertTrue(ready, "no transform table <- sim_camera_optical through tf2_ros in 30 s")
        t = self.tf.lookup_transform("table", "sim_camera_optical", rclpy.time.Time()).transform
        self.assertEqual((t.translation.x, t.translation.y, t.translation.z), (0.0, 0.0, 0.8))
        self.assertAlmostEqual(abs(t.rotation.x), 1.0)  # a half turn about x: the camera looks down

    def test_2_detections_3d_have_the_frames_stamp_and_centres_near_the_truth(self):
        located = self.stamped_as_a_frame(self.located)
        self.assertEqual(located.header.frame_id, "table")
        phrases = {d.id: d for d in located.detections}
        self.assertEqual(sorted(phrases), ["anchor_0", "target"], self.probe.status[-3:])
        for role, label in (("target", "white cup"), ("anchor_0", "blue plate")):
            c, truth = phrases[role].bbox.center.position, TRUTH[label]
            self.assertEqual(phrases[role].header.stamp, located.header.stamp)
            self.assertLess(np.linalg.norm(np.subtract([c.x, c.y, c.z], truth.center)), 0.03, label)
        said = self.probe.spin_until(lambda: next((v for v in map(_values, reversed(self.probe.diagnostics))
                                                   if v.get("depth") == "paired"), None), 10)  # fmt: skip
        self.assertIsNotNone(said, "/diagnostics never said the depth was paired")
        self.assertEqual(said["frame_3d"], "table")

    def test_3_goal_pose_for_the_put_command(self):
        self.assert_goal_on_the_table_right_of_the_plate(self.stamped_as_a_frame(self.poses))

    def test_4_verify_and_imagine_carry_the_same_goal_pose(self):
        stream = self.stamped_as_a_frame(self.poses).pose.position
        client = self.probe.node.create_client(Verify, "verify")
        verified = self.probe.call(client, Verify.Request(instruction=PUT), timeout=300.0)
        self.assertTrue(verified.success, verified.message)
        self.assert_goal_on_the_table_right_of_the_plate(verified.goal_pose, verified.message)
        outcome = self.probe.imagine_result(Imagine.Goal(instruction=PUT, seed=0), 580)
        self.assertEqual(outcome.status, GoalStatus.STATUS_SUCCEEDED, outcome.result.message)
        for pose, said in ((verified.goal_pose, verified.message), (outcome.result.goal_pose, outcome.result.message)):
            self.assert_goal_on_the_table_right_of_the_plate(pose, said)
            p = pose.pose.position  # the same frame, the same plan: the same place
            self.assertLess(np.linalg.norm([p.x - stream.x, p.y - stream.y, p.z - stream.z]), 0.002)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_the_node_exits_cleanly(self, proc_info, proc_output):
        self.assertIn("shut down (model freed)", clean_exit_output(proc_info, proc_output))
