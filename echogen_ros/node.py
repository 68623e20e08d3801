"""`echogen_node`: the ROS 2 edge. Message in → runtime call → message out; nothing worth testing here.

A lifecycle node: the model loads on configure (FAILURE, not a crash, when it cannot), topics/services
/action exist while active. Inference runs in its own callback group on a MultiThreadedExecutor so
services stay responsive. Parameters that are not read-only take effect as soon as they are set.
Needs ROS 2 (rclpy); everything it calls is tested without ROS.
"""

from __future__ import annotations

import threading

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.guard_condition import GuardCondition
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection2DArray, Detection3DArray

from echogen_ros import limits
from echogen_ros.action import Imagine
from echogen_ros.params import BY_NAME, PARAMS, limit_settings, runtime_settings, validate_all
from echogen_ros.ros_main import run
from echogen_ros.srv import Ground, Verify


def _descriptor(spec) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if isinstance(spec.default, float):
        descriptor.floating_point_range = [FloatingPointRange(from_value=spec.low, to_value=spec.high)]
    elif isinstance(spec.default, int) and not isinstance(spec.default, bool):
        descriptor.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
    return descriptor


class EchoGenNode(LifecycleNode):
    def __init__(self) -> None:
        super().__init__("echogen")
        for spec in PARAMS:
            self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.runtime = None
        self.finalized = False
        self._io: list = []
        self._wake = None
        self._inference_group = MutuallyExclusiveCallbackGroup()
        # held by a grounding from its step to its last publish, and by the transitions that take the I/O and
        # publishers down: a grounding in flight (a scene listing takes about a second) finishes first
        self._grounding = threading.RLock()
        self._request_group = ReentrantCallbackGroup()  # never `_services`: rclpy's Node owns that name

    def p(self, name: str):
        return self.get_parameter(name).value

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        ours = [p for p in parameters if p.name in BY_NAME]  # use_sim_time and friends are rclpy's
        current = {spec.name: self.p(spec.name) for spec in PARAMS}
        reason = validate_all(current | {p.name: p.value for p in ours})
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        if self.runtime is not None:
            self._apply_live({p.name: p.value for p in ours})
        return SetParametersResult(successful=True)

    def _apply_live(self, values: dict) -> None:
        self.runtime.reconfigure(**runtime_settings(values))
        if values.get("instruction"):
            self._say(self.runtime.on_instruction(values["instruction"]))
            self._wake_inference()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = {spec.name: self.p(spec.name) for spec in PARAMS}
        reason = validate_all(values)
        if reason:
            self.get_logger().error(reason)
            return TransitionCallbackReturn.FAILURE
        try:
            limits.apply(limit_settings(values))  # one policy for the whole process (read-only parameters)
        except ValueError as exc:
            self.get_logger().error(str(exc))
            return TransitionCallbackReturn.FAILURE
        try:  # torch and the model load here, so a missing library fails configure instead of the import
            from echogen_ros.engines.select import load_grounding_model
            from echogen_ros.runtime.core import Runtime, RuntimeConfig
            from echogen_ros.runtime.messages import MessageTypes

            model = load_grounding_model(self.p("model_path") or None, self.p("backend"), self.p("device"),
                                         log=self.get_logger().info)  # fmt: skip
        except ImportError as exc:
            self.get_logger().error(f"cannot load the model: {exc}; install the node's Python dependencies into "
                                    "the Python that runs ROS 2 (README, ROS 2 users: make ros-venv)")  # fmt: skip
            return TransitionCallbackReturn.FAILURE
        except (ValueError, OSError, RuntimeError) as exc:
            self.get_logger().error(f"cannot load the model: {exc}")
            return TransitionCallbackReturn.FAILURE
        config = RuntimeConfig().changed(**runtime_settings(values))
        self.runtime = Runtime(model, MessageTypes.from_rclpy(), config)
        reliable = QoSProfile(depth=10)
        self.detections = self.create_lifecycle_publisher(Detection2DArray, "detections", reliable)
        self.debug = self.create_lifecycle_publisher(Image, "debug_image", reliable)
        self.status = self.create_lifecycle_publisher(String, "status", reliable)
        self.diagnostics = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", reliable)
        self.detections_3d = self.create_lifecycle_publisher(Detection3DArray, "detections_3d", reliable)
        self.goal_pose = self.create_lifecycle_publisher(PoseStamped, "goal_pose", reliable)
        if self.runtime.lists_scenes:  # every object in the frame, listed beside the groundings
            self.scene = self.create_lifecycle_publisher(Detection2DArray, "scene", reliable)
        if self.p("instruction"):
            self.runtime.on_instruction(self.p("instruction"))
        self.get_logger().info("configured")
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
        # grounding runs when a frame or an instruction arrives (never on a polling timer, which would add up
        # to its period to every frame's latency); in its own group, so a frame that arrives meanwhile waits
        self._wake = self.create_guard_condition(self._ground_due, callback_group=self._inference_group)
        tf_static = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)  # as tf2's static listener
        self._io = [
            image_sub,
            self.create_subscription(Image, "depth", self._on_depth, camera),  # registered to the colour frame
            self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, camera),
            self.create_subscription(TFMessage, "/tf", self._on_transforms, 100),
            self.create_subscription(TFMessage, "/tf_static", self._on_transforms, tf_static),
            self.create_subscription(String, "instruction", self._on_instruction, 10),
            self.create_service(Ground, "ground", self._ground, callback_group=self._request_group),
            self.create_service(Verify, "verify", self._verify, callback_group=self._request_group),
            ActionServer(self, Imagine, "imagine", self._imagine, callback_group=self._request_group,
                         goal_callback=lambda goal: GoalResponse.ACCEPT,
                         cancel_callback=lambda handle: CancelResponse.ACCEPT),
            self._wake,
            self.create_timer(1.0, self._publish_diagnostics),
        ]  # fmt: skip
        self.get_logger().info("active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown_io()
        self.get_logger().info("inactive")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up (model freed)")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.finalized = True
        self.get_logger().info("shut down (model freed)")
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        with self._grounding:
            self._teardown_io()
            for name in ("detections", "debug", "status", "diagnostics", "scene", "detections_3d", "goal_pose"):
                if hasattr(self, name):
                    self.destroy_lifecycle_publisher(getattr(self, name))
                    delattr(self, name)
            self.runtime = None  # frees the model

    def _teardown_io(self) -> None:
        with self._grounding:
            for item in self._io:
                if isinstance(item, ActionServer):
                    item.destroy()
                elif isinstance(item, GuardCondition):
                    self.destroy_guard_condition(item)
                elif hasattr(item, "timer_period_ns"):
                    self.destroy_timer(item)
                elif hasattr(item, "topic_name"):
                    self.destroy_subscription(item)
                else:
                    self.destroy_service(item)
            self._io, self._wake = [], None

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    def _say(self, text: str | None) -> None:
        if text:
            self.status.publish(String(data=text))

    def _wake_inference(self) -> None:
        wake = self._wake  # None while inactive
        if wake is not None:
            wake.trigger()

    def _on_image(self, msg: Image) -> None:
        self._say(self.runtime.on_image(msg, self._now()))
        self._wake_inference()

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._say(self.runtime.on_compressed(msg, self._now()))
        self._wake_inference()

    def _on_depth(self, msg: Image) -> None:
        self._say(self.runtime.on_depth(msg))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._say(self.runtime.on_camera_info(msg))

    def _on_transforms(self, msg: TFMessage) -> None:
        self._say(self.runtime.on_transforms(msg))

    def _on_instruction(self, msg: String) -> None:
        self._say(self.runtime.on_instruction(msg.data))
        self._wake_inference()

    def _ground_due(self) -> None:
        with self._grounding:
            if self._wake is None:  # deactivated after this wake-up was queued: nothing to ground or publish
                return
            out = self.runtime.step(self._now())
            if out is not None:
                self._publish(out)
            listed = self.runtime.list_step(self._now())  # one step of a listing: a due frame waits no longer
            if listed.scene is not None:
                self.scene.publish(listed.scene)
            self._say(listed.status)
        if listed.under_way:  # the next step after any frame due meanwhile
            self._wake_inference()

    def _publish(self, out) -> None:
        """A grounding's outputs (runtime.core.Outputs) on their topics."""
        if out.detections is not None:
            self.detections.publish(out.detections)
        if out.debug_image is not None and self.runtime.config.debug_image:  # turned off mid-grounding: not sent
            self.debug.publish(out.debug_image)
        if out.detections_3d is not None:
            self.detections_3d.publish(out.detections_3d)
        if out.goal_pose is not None:
            self.goal_pose.publish(out.goal_pose)
        self._say(out.status)

    def _publish_diagnostics(self) -> None:
        self.diagnostics.publish(self.runtime.diagnostics(self._now()))

    def _ground(self, request, response):
        return self.runtime.ground(request)

    def _verify(self, request, response):
        return self.runtime.verify(request)

    def _imagine(self, goal_handle):
        from echogen_ros.planning.imagination import Cancelled

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
    """Configure and activate at start; a failed configure leaves the node alive and unconfigured."""
    if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
        node.trigger_activate()
    else:
        node.get_logger().error(
            "configure failed, the node stays unconfigured: fix what the error above says, then "
            f"`ros2 lifecycle set {node.get_fully_qualified_name()} configure`"
        )


def _stop(node: EchoGenNode) -> None:
    """The shutdown transition on Ctrl-C / SIGTERM, so on_shutdown frees the model. Stopped in the middle of a
    transition (Ctrl-C while the model loads), the state machine has no shutdown to take: free it directly."""
    if node.finalized:
        return
    try:
        node.trigger_shutdown()
    except _rclpy.RCLError as error:  # rclpy: "Shutdown transtion not possible" from a transition's middle state
        node.get_logger().warning(f"stopped during a transition ({error}): the model is freed without it")
        node._release()
        node.finalized = True


def main(args: list[str] | None = None) -> None:
    run(EchoGenNode, args, multithreaded=True, start=_start, stop=_stop)


if __name__ == "__main__":
    main()
