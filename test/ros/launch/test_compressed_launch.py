"""launch_testing: the node on `image_transport: compressed` fed JPEG frames by a best-effort publisher (as a
camera driver's image_transport sends them), bad compressed frames (a PNG bomb that decodes to 20000x20000,
a truncated JPEG, a frame over the `max_decoded_pixels` the node was given as a parameter) that become
status lines while grounding goes on, a second node whose model cannot load (configure fails, the node stays
alive and answers its lifecycle services through to shutdown), and a third whose Python has no torch (a
`torch` package that raises ImportError shadows the real one): configure fails with what to install,
instead of the node dying at import."""

import os
import sys
import tempfile
import unittest
import zlib

import cv2
import launch_ros.actions
import launch_testing.actions
import launch_testing.asserts
import numpy as np
import pytest
import rclpy
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import String

import launch

sys.path.insert(0, os.path.dirname(__file__))
from probe import Probe, camera_publisher, clean_exit_output, iou  # noqa: E402

from echogen_ros.world.dataset import world_sample  # noqa: E402

WIDTH, HEIGHT = 640, 480


@pytest.mark.launch_test
def generate_test_description():
    node = launch_ros.actions.Node(
        package="echogen_ros", executable="echogen_node", name="echogen", output="screen",
        parameters=[{"image_transport": "compressed", "grounding_every_frames": 1, "score_threshold": 0.0,
                     "model_path": os.environ.get("ECHOGEN_TEST_MODEL", ""),
                     "max_decoded_pixels": 1_000_000}],  # an input limit set as a parameter (test_2)
    )  # fmt: skip
    broken = launch_ros.actions.Node(
        package="echogen_ros", executable="echogen_node", name="echogen", namespace="broken", output="screen",
        parameters=[{"model_path": "/nonexistent/echogen-model"}],
    )  # fmt: skip
    shadow = tempfile.mkdtemp(prefix="no_torch_")
    os.makedirs(os.path.join(shadow, "torch"))
    with open(os.path.join(shadow, "torch", "__init__.py"), "w") as module:
        module.write("raise ImportError(\"No module named 'torch'\")\n")
    no_torch = launch_ros.actions.Node(
        package="echogen_ros", executable="echogen_node", name="echogen", namespace="no_torch", output="screen",
        additional_env={"PYTHONPATH": os.pathsep.join([shadow, os.environ.get("PYTHONPATH", "")])},
    )  # fmt: skip
    return launch.LaunchDescription([node, broken, no_torch, launch_testing.actions.ReadyToTest()])


def jpeg_frame(rgb: np.ndarray, stamp_sec: int) -> CompressedImage:
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    message = CompressedImage(format="bgr8; jpeg compressed bgr8")
    message.header.stamp.sec, message.header.frame_id = stamp_sec, "jpeg_camera"
    message.data.frombytes(jpeg.tobytes())
    return message


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A real PNG of width x height black RGB pixels: 1.2 GB decoded, about a megabyte encoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    packer, rows = zlib.compressobj(9), bytes(1 + 3 * width) * 200
    data = b"".join(packer.compress(rows) for _ in range(height // 200)) + packer.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


class TestCompressedAndBroken(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.probe = Probe()
        assert cls.probe.spin_until(lambda: cls.probe.lifecycle_state() == "active" or None, 120), "not active"
        cls.camera = camera_publisher(cls.probe.node, "image/compressed", CompressedImage)

    @classmethod
    def tearDownClass(cls):
        cls.probe.destroy()
        rclpy.shutdown()

    def stream_until(self, message, done, timeout: float = 30.0):
        return self.probe.spin_until(done, timeout, every=lambda: self.camera.publish(message))

    def test_1_jpeg_frames_from_a_best_effort_camera_are_grounded(self):
        scored = 0
        for index in range(3):
            sample = world_sample(5, index, "test")
            objects = sample.scene.objects
            labels = [f"{o.colour} {o.category}" for o in objects]
            target = next(i for i, label in enumerate(labels) if labels.count(label) == 1)
            phrase = f"the {labels[target]}"
            self.probe.spin_until(lambda p=phrase: any(repr(p) in s for s in self.probe.status), 20,
                                  every=lambda p=phrase: self.probe.instruction.publish(String(data=p)))  # fmt: skip
            frame = jpeg_frame(sample.image(WIDTH, HEIGHT), stamp_sec=100 + index)
            found = self.stream_until(
                frame,
                lambda s=100 + index: next(
                    (a for a in self.probe.detections if a.header.stamp.sec == s and a.detections), None
                ),
            )
            self.assertIsNotNone(found, f"no detections for frame {index}")
            self.assertEqual(found.header.frame_id, "jpeg_camera")
            x1, y1, x2, y2 = sample.boxes(WIDTH, HEIGHT)[target]
            truth = type(found.detections[0].bbox)()
            truth.center.position.x, truth.center.position.y = (x1 + x2) / 2, (y1 + y2) / 2
            truth.size_x, truth.size_y = float(x2 - x1), float(y2 - y1)
            scored += iou(found.detections[0].bbox, truth) >= 0.5
        self.assertGreaterEqual(scored, 2, "the JPEG frames' targets were not found")

    def test_2_bad_compressed_frames_are_status_lines_and_grounding_goes_on(self):
        bomb = CompressedImage(format="png")
        bomb.data.frombytes(png_bomb())
        truncated = jpeg_frame(world_sample(5, 0, "test").image(WIDTH, HEIGHT), stamp_sec=200)
        truncated.data = truncated.data[:400]
        large = jpeg_frame(world_sample(5, 0, "test").image(1280, 960), stamp_sec=201)  # over the parameter's limit
        for frame, text in ((bomb, "would decode to 20000x20000"), (truncated, "cannot decode"),
                            (large, "1280x960 pixels (limit 1000000")):  # fmt: skip
            seen = self.stream_until(frame, lambda t=text: any(t in s for s in self.probe.status))
            self.assertTrue(seen, f"no status line with {text!r}")
        good = jpeg_frame(world_sample(5, 1, "test").image(WIDTH, HEIGHT), stamp_sec=300)
        after = self.stream_until(good, lambda: any(a.header.stamp.sec == 300 for a in self.probe.detections))
        self.assertTrue(after, "no grounding after the bad frames")

    def test_3_a_model_that_cannot_load_fails_configure_and_the_node_lives(self):
        broken = "/broken/echogen"
        self.assertEqual(self.probe.lifecycle_state(broken), "unconfigured")
        self.assertFalse(self.probe.transition("configure", broken))
        self.assertEqual(self.probe.lifecycle_state(broken), "unconfigured")  # still answering
        result = self.probe.set_parameter("model_path", "", node=broken)
        self.assertFalse(result.successful)
        self.assertIn("read-only", result.reason)
        self.assertTrue(self.probe.transition("shutdown", broken))
        self.assertEqual(self.probe.lifecycle_state(broken), "finalized")

    def test_4_without_torch_configure_fails_and_the_node_lives(self):
        self.assertEqual(self.probe.lifecycle_state("/no_torch/echogen"), "unconfigured")
        self.assertFalse(self.probe.transition("configure", "/no_torch/echogen"))


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_both_nodes_exit_cleanly(self, proc_info, proc_output):
        text = clean_exit_output(proc_info, proc_output)
        self.assertIn("cannot load the model", text)
        self.assertIn("configure failed, the node stays unconfigured", text)
        self.assertIn("No module named 'torch'; install the node's Python dependencies", text)
