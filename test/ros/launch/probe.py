"""What the launch tests use to watch and call a running echogen node: one rclpy node that records every
output topic, with calls that spin until an answer or a deadline (never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable

import launch_testing.asserts
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from echogen_ros.action import Imagine
from echogen_ros.msg import Layout
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.action import ActionClient
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String
from vision_msgs.msg import Detection2DArray

TRANSITIONS = {name: getattr(Transition, f"TRANSITION_{name.upper()}")
               for name in ("configure", "activate", "deactivate", "cleanup")}  # fmt: skip
SHUTDOWN = {
    "unconfigured": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
    "inactive": Transition.TRANSITION_INACTIVE_SHUTDOWN,
    "active": Transition.TRANSITION_ACTIVE_SHUTDOWN,
}


def stamp_key(header) -> tuple[int, int]:
    return int(header.stamp.sec), int(header.stamp.nanosec)


def iou(a, b) -> float:
    """IoU of two vision_msgs/BoundingBox2D."""

    def corners(box):
        cx, cy, w, h = box.center.position.x, box.center.position.y, box.size_x, box.size_y
        return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2

    (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = corners(a), corners(b)
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


class Probe:
    """Records /detections, /status, /debug_image, /diagnostics and the sim camera's ground truth."""

    def __init__(self, name: str = "echogen_probe", node_name: str = "/echogen") -> None:
        self.node = rclpy.create_node(name)
        self.target = node_name
        self.detections: list = []
        self.status: list[str] = []
        self.debug: list = []
        self.diagnostics: list = []
        self.truth: dict[tuple[int, int], object] = {}
        n = self.node
        n.create_subscription(Detection2DArray, "detections", self.detections.append, 50)
        n.create_subscription(String, "status", lambda m: self.status.append(m.data), 100)
        n.create_subscription(Image, "debug_image", self.debug.append, 5)
        n.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 20)
        n.create_subscription(Layout, "/sim_camera/ground_truth", self._on_truth, 100)
        self.instruction = n.create_publisher(String, "instruction", 10)
        self.imagine = ActionClient(n, Imagine, "imagine")

    def _on_truth(self, msg) -> None:
        self.truth[stamp_key(msg.header)] = msg

    def spin_until(self, done: Callable[[], object], timeout: float, every: Callable[[], None] | None = None):
        """Spin until `done()` is truthy (returned) or `timeout` seconds pass (None)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if every is not None:
                every()
            rclpy.spin_once(self.node, timeout_sec=0.1)
            result = done()
            if result:
                return result
        return None

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def call(self, client, request, timeout: float = 60.0):
        assert client.wait_for_service(timeout_sec=timeout), f"{client.srv_name} not available"
        future = client.call_async(request)
        self.spin_until(future.done, timeout)
        assert future.done(), f"{client.srv_name} did not answer in {timeout} s"
        return future.result()

    def set_parameter(self, name: str, value, node: str | None = None):
        """SetParametersResult of setting one parameter on the node (typed from the Python value)."""
        kind, field = {bool: (ParameterType.PARAMETER_BOOL, "bool_value"),
                       int: (ParameterType.PARAMETER_INTEGER, "integer_value"),
                       float: (ParameterType.PARAMETER_DOUBLE, "double_value"),
                       str: (ParameterType.PARAMETER_STRING, "string_value")}[type(value)]  # fmt: skip
        parameter = Parameter(name=name, value=ParameterValue(type=kind, **{field: value}))
        client = self.node.create_client(SetParameters, f"{node or self.target}/set_parameters")
        return self.call(client, SetParameters.Request(parameters=[parameter])).results[0]

    def lifecycle_state(self, node: str | None = None) -> str:
        client = self.node.create_client(GetState, f"{node or self.target}/get_state")
        return self.call(client, GetState.Request()).current_state.label

    def transition(self, name: str, node: str | None = None) -> bool:
        client = self.node.create_client(ChangeState, f"{node or self.target}/change_state")
        transition_id = SHUTDOWN[self.lifecycle_state(node)] if name == "shutdown" else TRANSITIONS[name]
        return self.call(client, ChangeState.Request(transition=Transition(id=transition_id))).success

    def imagine_result(self, goal, timeout: float):
        """The Imagine action's answer (status, result) to `goal`, waiting at most `timeout` s for the result."""
        assert self.imagine.wait_for_server(timeout_sec=30), "no imagine action server in 30 s"
        future = self.imagine.send_goal_async(goal)
        handle = self.spin_until(lambda: future.done() and future.result(), 60)
        assert handle and handle.accepted, "the imagine goal was not accepted in 60 s"
        result = handle.get_result_async()
        assert self.spin_until(result.done, timeout), f"no imagine result in {timeout} s"
        return result.result()

    def latest_truth(self, timeout: float = 30.0):
        found = self.spin_until(lambda: self.truth, timeout)
        assert found, "no ground truth from the sim camera"
        return self.truth[max(self.truth)]

    def destroy(self) -> None:
        self.imagine.destroy()
        self.node.destroy_node()


def clean_exit_output(proc_info, proc_output) -> str:
    """After the launch shut down: every process exited 0 and printed no traceback; all they printed."""
    launch_testing.asserts.assertExitCodes(proc_info)
    text = "".join(io.text.decode(errors="replace") for io in proc_output)
    assert "Traceback" not in text, text[-3000:]
    return text


def unique_label(layout) -> str | None:
    """A "colour category" that names exactly one object of the layout."""
    labels = [o.label for o in layout.objects]
    return next((label for label in labels if labels.count(label) == 1), None)


def camera_publisher(node, topic: str, kind=Image):
    """A best-effort, depth-1 publisher, as camera drivers publish."""
    return node.create_publisher(kind, topic, qos_profile_sensor_data)
