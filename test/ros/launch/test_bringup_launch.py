"""launch_testing: `bringup.launch.py use_sim_camera:=true` as robots run it (real processes, DDS on loopback,
the embedded default model), scored live against the sim camera's ground truth: detections, debug image,
status, diagnostics, the ground and verify services, the imagine action (every feedback stage, and a cancel
that lands mid-goal), live parameters, bad frames on the camera topic, lifecycle transitions, and a clean
exit on Ctrl-C. Run by `colcon test` (see README: make ros-test)."""

import os
import sys
import time
import unittest

import launch_testing.actions
import launch_testing.asserts
import numpy as np
import pytest
import rclpy
from action_msgs.msg import GoalStatus
from ament_index_python.packages import get_package_share_directory
from builtin_interfaces.msg import Time
from launch.launch_description_sources import PythonLaunchDescriptionSource
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import String

import launch

sys.path.insert(0, os.path.dirname(__file__))
from echogen_ros.action import Imagine  # noqa: E402
from echogen_ros.srv import Ground, Verify  # noqa: E402
from probe import Probe, camera_publisher, clean_exit_output, iou, stamp_key, unique_label  # noqa: E402

STAGES = ["planning", "generating", "grounding", "verifying", "done"]


@pytest.mark.launch_test
def generate_test_description():
    bringup = os.path.join(get_package_share_directory("echogen_ros"), "launch", "bringup.launch.py")
    return launch.LaunchDescription([
        launch.actions.IncludeLaunchDescription(
            PythonLaunchDescriptionSource(bringup),
            launch_arguments={"use_sim_camera": "true", "model": os.environ.get("ECHOGEN_TEST_MODEL", "")}.items(),
        ),
        launch_testing.actions.ReadyToTest(),
    ])  # fmt: skip


class TestBringup(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.probe = Probe()
        state = cls.probe.spin_until(lambda: cls.probe.lifecycle_state() == "active" or None, 120)
        assert state, "the echogen node did not become active within 120 s"

    @classmethod
    def tearDownClass(cls):
        cls.probe.destroy()
        rclpy.shutdown()

    # ---- helpers -------------------------------------------------------------------------------------------
    def instruct(self, text: str) -> None:
        """Publish an instruction until the node's status confirms it."""
        seen = self.probe.spin_until(lambda: any(repr(text) in s for s in self.probe.status), 30,
                                     every=lambda: self.probe.instruction.publish(String(data=text)))  # fmt: skip
        self.assertTrue(seen, f"the node never confirmed the instruction {text!r}")

    def fresh_grounding(self, timeout: float = 30.0) -> float | None:
        """Instruct a uniquely named object of the sim scene and return the IoU with the ground truth of the node's
        next detection of it on a frame showing it (0 where that frame has none); None when no such frame is grounded
        in `timeout` s (a loaded machine may confirm an instruction only after the object's scene has gone)."""
        phrase, label = self.fresh_target()
        self.instruct(phrase)
        start = len(self.probe.detections)

        def scored():  # [IoU] once a frame showing the object is grounded (a list: an IoU of 0 is an answer)
            for array in self.probe.detections[start:]:
                truth = self.probe.truth.get(stamp_key(array.header))
                if truth is None or unique_label_box(truth, label) is None:
                    continue  # a frame of another scene, or one whose truth has not arrived
                found = [d for d in array.detections if d.results[0].hypothesis.class_id == phrase]
                return [iou(found[0].bbox, unique_label_box(truth, label)) if found else 0.0]
            return None

        got = self.probe.spin_until(scored, timeout)
        return got[0] if got else None

    def grounds_a_fresh_target(self, tries: int = 6) -> bool:
        """Whether a uniquely named object of the sim scene, instructed, is grounded at IoU ≥ 0.5 with the ground
        truth, trying up to `tries` scenes' objects, one grounding each (a loaded machine grounds a scene only a few
        times before the sim camera moves on)."""
        return any((self.fresh_grounding() or 0.0) >= 0.5 for _ in range(tries))

    def fresh_target(self) -> tuple[str, str]:
        truth = self.probe.latest_truth()
        label = unique_label(truth)
        self.assertIsNotNone(label, "the sim scene has no uniquely named object")
        return f"the {label}", label

    # ---- the stream ----------------------------------------------------------------------------------------
    def test_01_grounds_the_named_object_where_the_ground_truth_has_it(self):
        ious = []
        for _ in range(8):  # a loaded machine grounds a scene only a few times before the sim camera moves on
            got = self.fresh_grounding()
            ious += [] if got is None else [got]
            if len(ious) >= 3:
                break
        self.assertGreaterEqual(sum(v >= 0.5 for v in ious), 2, f"IoUs with the ground truth: {ious}")
        for array in self.probe.detections[-3:]:
            self.assertEqual(array.header.frame_id, "sim_camera_optical")
            self.assertIn(stamp_key(array.header), self.probe.truth)  # the stamp of a frame the camera sent
            for detection in array.detections:
                self.assertEqual(stamp_key(detection.header), stamp_key(array.header))
                self.assertEqual(detection.id, "target")
                self.assertTrue(0.0 <= detection.results[0].hypothesis.score <= 1.0)

    def test_02_debug_image_status_and_diagnostics(self):
        got = self.probe.spin_until(lambda: self.probe.debug and self.probe.diagnostics and self.probe.status, 30)
        self.assertTrue(got, "no debug_image, /diagnostics or status")
        stamps = {stamp_key(a.header) for a in self.probe.detections}
        self.assertTrue(any(stamp_key(d.header) in stamps for d in self.probe.debug))
        debug = self.probe.debug[-1]
        self.assertEqual((debug.width, debug.height, debug.encoding), (640, 480, "rgb8"))
        status = self.probe.diagnostics[-1].status[0]
        self.assertEqual(status.name, "echogen_ros: grounding")
        values = {kv.key: kv.value for kv in status.values}
        self.assertGreater(int(values["groundings"]), 0)
        self.assertGreater(int(values["frames"]), 0)
        self.assertTrue(any(s.startswith("grounded ") for s in self.probe.status))

    # ---- services and the action ------------------------------------------------------------------------
    def test_03_ground_service_on_the_latest_frame(self):
        client = self.probe.node.create_client(Ground, "ground")
        for _ in range(5):  # the scene may change between choosing the phrase and the call
            phrase, label = self.fresh_target()
            response = self.probe.call(client, Ground.Request(image=Image(), expression=phrase, top_k=2))
            truth = self.probe.truth.get(stamp_key(response.detections.header))
            if response.success and truth is not None and unique_label_box(truth, label) is not None:
                break
        self.assertTrue(response.success, response.message)
        self.assertEqual(response.detections.header.frame_id, "sim_camera_optical")
        self.assertTrue(1 <= len(response.detections.detections) <= 2)
        self.assertGreaterEqual(iou(response.detections.detections[0].bbox, unique_label_box(truth, label)), 0.5)
        bad = self.probe.call(client, Ground.Request(image=Image(), expression="", top_k=1))
        self.assertFalse(bad.success)
        self.assertIn("empty expression", bad.message)

    def test_04_verify_service(self):
        client = self.probe.node.create_client(Verify, "verify")
        truth = self.probe.latest_truth()
        labels = [o.label for o in truth.objects if [p.label for p in truth.objects].count(o.label) == 1]
        self.assertGreaterEqual(len(labels), 2)
        request = Verify.Request(instruction=f"put the {labels[0]} left of the {labels[1]}", image=Image())
        response = self.probe.call(client, request)
        self.assertTrue(response.success, response.message)
        self.assertEqual(len(response.relations), 1)
        self.assertTrue(response.message)
        self.assertFalse("ambiguous" in response.message and "cannot find" in response.message, response.message)
        by_layout = self.probe.call(client, Verify.Request(instruction="", goal_layout=truth, image=Image()))
        self.assertTrue(by_layout.success, by_layout.message)
        self.assertEqual(len(by_layout.relations), len(truth.objects))

    def _send_goal(self, goal, on_feedback):
        client = self.probe.imagine
        self.assertTrue(client.wait_for_server(timeout_sec=30))
        future = client.send_goal_async(goal, feedback_callback=lambda m: on_feedback(m.feedback))
        handle = self.probe.spin_until(lambda: future.done() and future.result(), 30)
        self.assertTrue(handle and handle.accepted)
        return handle

    def _result(self, handle, timeout: float = 240.0):
        future = handle.get_result_async()
        self.assertTrue(self.probe.spin_until(future.done, timeout), f"no imagine result in {timeout} s")
        return future.result()

    def test_05_imagine_action_reports_every_stage(self):
        truth = self.probe.latest_truth()
        stages = []
        handle = self._send_goal(Imagine.Goal(layout=truth, seed=7), lambda f: stages.append(f.stage))
        outcome = self._result(handle)
        self.assertEqual(outcome.status, GoalStatus.STATUS_SUCCEEDED, outcome.result.message)
        self.assertEqual(stages, STAGES)
        result = outcome.result
        self.assertEqual((result.image.width, result.image.height), (truth.width, truth.height))
        self.assertEqual(len(result.object_iou), len(truth.objects))
        self.assertTrue(0.0 <= result.cycle_iou <= 1.0)
        self.assertIn("seed 7, guidance 3", result.message)

    def test_06_imagine_cancel_lands_mid_goal(self):
        truth = self.probe.latest_truth()
        stages = []
        handle = self._send_goal(Imagine.Goal(layout=truth, seed=1), lambda f: stages.append(f.stage))
        self.assertTrue(self.probe.spin_until(lambda: "generating" in stages, 60))
        cancel = handle.cancel_goal_async()
        self.probe.spin_until(cancel.done, 30)
        outcome = self._result(handle)
        self.assertEqual(outcome.status, GoalStatus.STATUS_CANCELED)
        self.assertEqual(outcome.result.message, "cancelled")
        self.assertNotIn("done", stages)

    # ---- parameters -----------------------------------------------------------------------------------------
    def grounding_gaps(self, count: int) -> list[float]:
        """Seconds between the camera stamps of the frames grounded by the next `count` groundings, after the one
        in flight (grounded under the schedule before), waited for by count (up to 20 s each)."""
        start = len(self.probe.detections) + 1
        arrived = self.probe.spin_until(lambda: len(self.probe.detections) >= start + count, 20.0 * (count + 1))
        self.assertTrue(arrived, f"fewer than {count + 1} groundings in {20 * (count + 1)} s")
        stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in self.probe.detections[start:]]
        return [round(b - a, 2) for a, b in zip(stamps, stamps[1:])]

    def count_detections(self, seconds: float) -> int:
        start = len(self.probe.detections)
        self.probe.spin_for(seconds)
        return len(self.probe.detections) - start

    def test_07_live_parameters_take_effect_at_once(self):
        set_ = self.probe.set_parameter
        self.addCleanup(
            self.restore, score_threshold=0.0, grounding_every_frames=10, grounding_every_seconds=1.0, debug_image=True
        )  # what the later tests ground with, even where this one fails midway
        phrase, _ = self.fresh_target()
        said_before = len(self.probe.status)
        self.assertTrue(set_("instruction", phrase).successful)
        confirmed = self.probe.spin_until(
            lambda: any(f"instruction: {phrase!r}" in s for s in self.probe.status[said_before:]), 10
        )
        self.assertTrue(confirmed, f"the node never confirmed the instruction {phrase!r}")
        self.assertTrue(set_("score_threshold", 1.0).successful)
        start = len(self.probe.detections)
        self.assertTrue(self.probe.spin_until(lambda: len(self.probe.detections) > start + 1, 20))
        self.assertEqual(self.probe.detections[-1].detections, [])  # no referent reaches probability 1.0
        said = f"not found {phrase!r}: "
        # waited for: the node publishes a grounding's status just after its detections
        told = self.probe.spin_until(lambda: any(said in s for s in self.probe.status[-5:]), 10)
        self.assertTrue(told, self.probe.status[-5:])

        def diagnosed():
            values = {kv.key: kv.value for kv in self.probe.diagnostics[-1].status[0].values}
            return said in values.get("not_found", "")

        self.assertTrue(self.probe.spin_until(diagnosed, 10), "/diagnostics never said what was not found")
        self.assertTrue(set_("score_threshold", 0.0).successful)
        self.assertTrue(set_("grounding_every_frames", 1).successful)
        self.assertTrue(set_("grounding_every_seconds", 0.0).successful)
        # the schedule read from the grounded frames' camera stamps (the sim camera sends 10 frames a second), the
        # groundings waited for by count: a loaded CPU slows them, but cannot put two frames 2 s apart closer
        fast = self.grounding_gaps(8)
        self.assertTrue(set_("grounding_every_frames", 0).successful)
        self.assertTrue(set_("grounding_every_seconds", 2.0).successful)
        slow = self.grounding_gaps(4)
        # the schedule before (every 10 frames or 1 s) never grounds frames 0.5 s apart; one per 2 s never 1 s apart
        self.assertLessEqual(min(fast), 0.5, f"seconds between the frames grounded at every frame: {fast}")
        self.assertGreaterEqual(min(slow), 1.0, f"seconds between the frames grounded at one per 2 s: {slow}")
        self.assertTrue(set_("grounding_every_frames", 1).successful)
        self.assertTrue(set_("debug_image", False).successful)
        self.count_detections(0.5)
        debug_before, start = len(self.probe.debug), len(self.probe.detections)
        # groundings go on (waited for, not timed: a scene listing holds the model for seconds on a loaded CPU)
        self.assertTrue(self.probe.spin_until(lambda: len(self.probe.detections) > start + 3, 20),
                        "fewer than 4 groundings in 20 s after debug_image:=false")  # fmt: skip
        self.assertEqual(len(self.probe.debug), debug_before, "debug images after debug_image:=false")
        self.assertTrue(set_("debug_image", True).successful)
        self.assertTrue(set_("guidance", 5.5).successful)
        handle = self._send_goal(Imagine.Goal(layout=self.probe.latest_truth(), seed=2), lambda f: None)
        self.assertIn("guidance 5.5", self._result(handle).result.message)
        self.assertTrue(set_("grounding_every_frames", 10).successful)
        self.assertTrue(set_("grounding_every_seconds", 1.0).successful)

    def restore(self, **values) -> None:
        for name, value in values.items():
            self.probe.set_parameter(name, value)

    def test_08_bad_values_and_read_only_parameters_are_refused_with_a_reason(self):
        refused = self.probe.set_parameter("backend", "onnxruntime")
        self.assertFalse(refused.successful)
        self.assertIn("read-only", refused.reason)
        out_of_range = self.probe.set_parameter("score_threshold", 1.5)
        self.assertFalse(out_of_range.successful)
        self.assertTrue(out_of_range.reason)
        wrong_choice = self.probe.set_parameter("guidance", -1.0)
        self.assertFalse(wrong_choice.successful)

    def test_09_use_sim_time(self):
        clock = self.probe.node.create_publisher(Clock, "/clock", 10)
        ticks = iter(range(10_000))

        def tick():
            nanos = 1_000_000_000_000 + next(ticks) * 100_000_000  # 1000 s, then +0.1 s per spin
            clock.publish(Clock(clock=Time(sec=nanos // 10**9, nanosec=nanos % 10**9)))

        self.assertTrue(self.probe.set_parameter("use_sim_time", True).successful)
        sim = self.probe.spin_until(
            lambda: next((d for d in self.probe.diagnostics[-3:] if 1000 <= d.header.stamp.sec < 2000), None), 30, tick
        )
        self.assertTrue(self.probe.set_parameter("use_sim_time", False).successful)
        self.assertIsNotNone(sim, "no /diagnostics stamped with /clock's time under use_sim_time")
        self.probe.node.destroy_publisher(clock)
        now = time.time()
        wall = self.probe.spin_until(
            lambda: next((d for d in self.probe.diagnostics[-2:] if abs(d.header.stamp.sec - now) < 60), None), 10
        )
        self.assertIsNotNone(wall, "/diagnostics did not return to the system clock")

    # ---- bad frames -------------------------------------------------------------------------------------------
    def test_10_bad_frames_are_status_lines_and_grounding_goes_on(self):
        publisher = camera_publisher(self.probe.node, "image")
        frames = {
            "1x1": make_image(1, 1, "rgb8", bytes(3)),
            "1 pixel high": make_image(640, 1, "rgb8", bytes(1920)),
            "wrong encoding": make_image(64, 64, "yuv444", bytes(64 * 64 * 3)),
            "truncated data": make_image(640, 480, "rgb8", bytes(1000)),
        }
        expected = ["too small to ground", "too small to ground", "unsupported image encoding", "image data has"]
        start = len(self.probe.status)
        for frame, text in zip(frames.values(), expected):
            seen = self.probe.spin_until(lambda t=text: any(t in s for s in self.probe.status[start:]), 10,
                                         every=lambda f=frame: publisher.publish(f))  # fmt: skip
            self.assertTrue(seen, f"no status line with {text!r}")
        self.assertTrue(self.grounds_a_fresh_target(), "no grounding at IoU >= 0.5 after the bad frames")

        def counted() -> bool:
            values = {kv.key: kv.value for kv in self.probe.diagnostics[-1].status[0].values}
            return int(values["skipped_frames"]) >= 4

        # waited for: /diagnostics comes once a second, on the node's clock
        self.assertTrue(self.probe.spin_until(counted, 10), "/diagnostics never counted the 4 skipped frames")

    # ---- lifecycle ------------------------------------------------------------------------------------------
    def test_11_lifecycle_transitions(self):
        probe = self.probe
        self.assertTrue(probe.transition("deactivate"))
        self.assertEqual(probe.lifecycle_state(), "inactive")
        probe.spin_for(1.0)
        self.assertEqual(self.count_detections(2.5), 0, "detections while inactive")
        self.assertTrue(probe.transition("activate"))
        scored = any(self.fresh_grounding() is not None for _ in range(6))
        self.assertTrue(scored, "no detection of an instructed object on a frame showing it after activate")
        self.assertTrue(probe.transition("deactivate"))
        self.assertTrue(probe.transition("cleanup"))
        self.assertEqual(probe.lifecycle_state(), "unconfigured")
        self.assertTrue(probe.transition("configure"))
        self.assertTrue(probe.transition("activate"))
        self.assertEqual(probe.lifecycle_state(), "active")
        self.assertTrue(self.grounds_a_fresh_target(), "no grounding at IoU >= 0.5 after cleanup and configure")


def unique_label_box(truth, label: str):
    boxes = [o.bbox for o in truth.objects if o.label == label]
    return boxes[0] if len(boxes) == 1 else None


def make_image(width: int, height: int, encoding: str, data: bytes) -> Image:
    image = Image(height=height, width=width, encoding=encoding, step=width * 3)
    image.header.frame_id = "bad_camera"
    image.data.frombytes(np.frombuffer(data, np.uint8).tobytes())
    return image


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_every_process_exits_cleanly_after_on_shutdown(self, proc_info, proc_output):
        self.assertIn("shut down (model freed)", clean_exit_output(proc_info, proc_output))
