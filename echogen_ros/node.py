"""`echogen_node`: the ROS 2 edge. Message in → runtime call → message out; nothing worth testing here.

A lifecycle node: the model loads on configure (FAILURE, not a crash, when it cannot), topics/services
/action exist while active. Inference runs in its own callback group on a MultiThreadedExecutor so
services stay responsive. Needs ROS 2 (rclpy); everything it calls is tested without ROS.
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from vision_msgs.msg import Detection2DArray

from echogen_ros.action import Imagine
from echogen_ros.engines.select import load_grounding_model
from echogen_ros.params import PARAMS, validate
from echogen_ros.ros_main import run
from echogen_ros.runtime.core import Cancelled, Runtime, RuntimeConfig
from echogen_ros.runtime.messages import MessageTypes
from echogen_ros.srv import Ground, Verify


class EchoGenNode(LifecycleNode):
    def __init__(self) -> None:
        super().__init__("echogen")
        for spec in PARAMS:
            descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
            if isinstance(spec.default, float):
                descriptor.floating_point_range = [FloatingPointRange(from_value=spec.low, to_value=spec.high)]
            elif isinstance(spec.default, int) and not isinstance(spec.default, bool):
                descriptor.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
            self.declare_parameter(spec.name, spec.default, descriptor)
        self.add_on_set_parameters_callback(self._check_parameters)
        self.runtime: Runtime | None = None
        self._io: list = []
        self._inference = MutuallyExclusiveCallbackGroup()
        self._services = ReentrantCallbackGroup()

    def p(self, name: str):
        return self.get_parameter(name).value

    def _check_parameters(self, parameters) -> SetParametersResult:
        for parameter in parameters:
            reason = validate(parameter.name, parameter.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        for spec in PARAMS:
            reason = validate(spec.name, self.p(spec.name))
            if reason:
                self.get_logger().error(reason)
                return TransitionCallbackReturn.FAILURE
        try:
            model = load_grounding_model(self.p("model_path") or None, self.p("backend"), self.p("device"),
                                         log=self.get_logger().info)  # fmt: skip
        except (ValueError, OSError, RuntimeError) as exc:
            self.get_logger().error(f"cannot load the model: {exc}")
            return TransitionCallbackReturn.FAILURE
        config = RuntimeConfig(
            every_frames=self.p("grounding_every_frames"),
            every_seconds=self.p("grounding_every_seconds"),
            score_threshold=self.p("score_threshold"),
            debug_image=self.p("debug_image"),
            guidance=self.p("guidance"),
        )
        self.runtime = Runtime(model, MessageTypes.from_rclpy(), config)
        reliable = QoSProfile(depth=10)
        self.detections = self.create_lifecycle_publisher(Detection2DArray, "detections", reliable)
        self.debug = self.create_lifecycle_publisher(Image, "debug_image", reliable)
        self.status = self.create_lifecycle_publisher(String, "status", reliable)
        self.diagnostics = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", reliable)
        if self.p("instruction"):
            self.runtime.on_instruction(self.p("instruction"))
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        reliability = (
            ReliabilityPolicy.RELIABLE if self.p("camera_reliability") == "reliable" else ReliabilityPolicy.BEST_EFFORT
        )
        camera = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=reliability)
        if self.p("image_transport") == "compressed":
            image_sub = self.create_subscription(CompressedImage, "image/compressed", self._on_compressed, camera)
        else:
            image_sub = self.create_subscription(Image, "image", self._on_image, camera)
        self._io = [
            image_sub,
            self.create_subscription(String, "instruction", self._on_instruction, 10),
            self.create_service(Ground, "ground", self._ground, callback_group=self._services),
            self.create_service(Verify, "verify", self._verify, callback_group=self._services),
            ActionServer(self, Imagine, "imagine", self._imagine, callback_group=self._services,
                         goal_callback=lambda goal: GoalResponse.ACCEPT,
                         cancel_callback=lambda handle: CancelResponse.ACCEPT),
            self.create_timer(1.0 / self.p("inference_rate_hz"), self._tick, callback_group=self._inference),
            self.create_timer(1.0, self._publish_diagnostics),
        ]  # fmt: skip
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown_io()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown_io()
        for publisher in (self.detections, self.debug, self.status, self.diagnostics):
            self.destroy_lifecycle_publisher(publisher)
        self.runtime = None  # frees the model
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown_io()
        self.runtime = None
        return TransitionCallbackReturn.SUCCESS

    def _teardown_io(self) -> None:
        for item in self._io:
            if isinstance(item, ActionServer):
                item.destroy()
            elif hasattr(item, "cancel"):
                self.destroy_timer(item)
            elif hasattr(item, "topic_name"):
                self.destroy_subscription(item)
            else:
                self.destroy_service(item)
        self._io = []

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    def _say(self, text: str | None) -> None:
        if text:
            self.status.publish(String(data=text))

    def _on_image(self, msg: Image) -> None:
        self._say(self.runtime.on_image(msg, self._now()))

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._say(self.runtime.on_compressed(msg, self._now()))

    def _on_instruction(self, msg: String) -> None:
        self._say(self.runtime.on_instruction(msg.data))

    def _tick(self) -> None:
        out = self.runtime.step(self._now())
        if out is None:
            return
        self.detections.publish(out.detections)
        if out.debug_image is not None:
            self.debug.publish(out.debug_image)
        self._say(out.status)

    def _publish_diagnostics(self) -> None:
        self.diagnostics.publish(self.runtime.diagnostics(self._now()))

    def _ground(self, request, response):
        return self.runtime.ground(request)

    def _verify(self, request, response):
        return self.runtime.verify(request)

    def _imagine(self, goal_handle):
        def feedback(stage: str, progress: float) -> None:
            goal_handle.publish_feedback(Imagine.Feedback(stage=stage, progress=float(progress)))

        try:
            result = self.runtime.imagine(goal_handle.request, feedback, lambda: goal_handle.is_cancel_requested)
        except Cancelled:
            goal_handle.canceled()
            return self.runtime.imagine_failure("cancelled")
        (goal_handle.succeed if result.success else goal_handle.abort)()
        return result


def _start(node: EchoGenNode) -> None:
    node.trigger_configure()
    node.trigger_activate()


def main(args: list[str] | None = None) -> None:
    run(EchoGenNode, args, multithreaded=True, start=_start)


if __name__ == "__main__":
    main()
