"""launch_testing: plan and imagine through the node's Imagine action return the goal of the whole scene (issue
35). The node (the embedded model, or ECHOGEN_TEST_MODEL) is fed one fixed world frame (the README's
scenes/images/000003.png) and asked to "put the cup right of the plate" and to "pick up the cup". The node
publishes `scene` (every label grounded), and each goal holds every object listed there (the cup moved, or
gone when picked up), never the note that the scene was not listed."""

import os
import sys
import unittest
from collections import Counter

import launch_ros.actions
import launch_testing.actions
import pytest
import rclpy
from action_msgs.msg import GoalStatus
from std_msgs.msg import String
from vision_msgs.msg import Detection2DArray

import launch

sys.path.insert(0, os.path.dirname(__file__))
from echogen_ros.action import Imagine  # noqa: E402
from probe import Probe, camera_publisher, clean_exit_output  # noqa: E402

from echogen_ros.runtime import conversions as conv  # noqa: E402
from echogen_ros.runtime.messages import MessageTypes  # noqa: E402
from echogen_ros.world.dataset import world_sample  # noqa: E402

PUT, PICK = "put the cup right of the plate", "pick up the cup"
NOT_LISTED = "the rest of the scene was not listed"


@pytest.mark.launch_test
def generate_test_description():
    node = launch_ros.actions.Node(
        package="echogen_ros", executable="echogen_node", name="echogen", output="screen",
        parameters=[{"grounding_every_frames": 1, "model_path": os.environ.get("ECHOGEN_TEST_MODEL", "")}],
    )  # fmt: skip
    return launch.LaunchDescription([node, launch_testing.actions.ReadyToTest()])


class TestGoalScene(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.probe = Probe()
        cls.scenes = []
        cls.probe.node.create_subscription(Detection2DArray, "scene", cls.scenes.append, 10)
        state = cls.probe.spin_until(lambda: cls.probe.lifecycle_state() == "active" or None, 120)
        assert state, "the echogen node did not become active within 120 s"
        rgb = world_sample(0, 2, "test").image()  # scenes/images/000003.png of `echogen world --seed 0 --split test`
        cls.frame = conv.image_message(MessageTypes.from_rclpy(), rgb, conv.header(MessageTypes.from_rclpy(), 5.0,
                                                                                   "camera"))  # fmt: skip
        camera = camera_publisher(cls.probe.node, "image")
        cls.probe.instruction.publish(String(data="the cup"))
        grounded = cls.probe.spin_until(lambda: any(s.startswith("grounded ") for s in cls.probe.status), 120,
                                        every=lambda: camera.publish(cls.frame))  # fmt: skip
        assert grounded, "the node never grounded the frame"
        assert cls.probe.node.count_publishers("/scene") > 0, "the node publishes no scene"

    @classmethod
    def tearDownClass(cls):
        cls.probe.destroy()
        rclpy.shutdown()

    def imagine(self, instruction: str):
        return self.probe.imagine_result(Imagine.Goal(instruction=instruction, seed=0), 400)

    def listed(self) -> Counter:
        arrays = self.probe.spin_until(lambda: self.scenes, 30)
        self.assertTrue(arrays, "a model that lists scenes published no scene")
        return Counter(d.results[0].hypothesis.class_id for d in arrays[-1].detections)

    def test_1_put_returns_the_goal_of_the_whole_scene(self):
        outcome = self.imagine(PUT)
        self.assertEqual(outcome.status, GoalStatus.STATUS_SUCCEEDED, outcome.result.message)
        goal = outcome.result.goal_layout
        self.assertEqual((goal.width, goal.height, goal.header.frame_id), (640, 480, "camera"))
        labels = Counter(o.label for o in goal.objects)  # every listed object, the cup under its observed label
        self.assertEqual(labels, self.listed(), outcome.result.message)
        self.assertNotIn(NOT_LISTED, outcome.result.message)

    def test_2_pick_up_removes_the_target(self):
        outcome = self.imagine(PICK)
        self.assertEqual(outcome.status, GoalStatus.STATUS_SUCCEEDED, outcome.result.message)
        picked = Counter(o.label for o in outcome.result.goal_layout.objects)
        self.assertEqual(sum(picked.values()), sum(self.listed().values()) - 1)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_the_node_exits_cleanly(self, proc_info, proc_output):
        self.assertIn("shut down (model freed)", clean_exit_output(proc_info, proc_output))
