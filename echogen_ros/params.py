"""The node's parameters in one table (names, defaults, ranges, descriptions), without rclpy, so that
validation and `config/echogen.yaml` are tested here; the node turns each into a ParameterDescriptor."""

from __future__ import annotations

from dataclasses import dataclass

from echogen_ros import limits
from echogen_ros.planning.imagination import CYCLE_THRESHOLD


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: object
    description: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    read_only: bool = False  # changing it live makes no sense (needs a reconfigure)


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", "", "EchoGen model directory; empty = the embedded default model", read_only=True),
    ParamSpec("backend", "torch", "grounding backend (falls back along tensorrt → onnxruntime → torch)",
              choices=("torch", "onnxruntime", "tensorrt"), read_only=True),
    ParamSpec("device", "cpu", "torch device: cpu, cuda or cuda:N", read_only=True),
    ParamSpec("image_transport", "raw", "subscribe to 'image' (raw) or 'image/compressed'",
              choices=("raw", "compressed"), read_only=True),
    ParamSpec("camera_reliability", "best_effort", "camera subscription QoS reliability (match your driver)",
              choices=("best_effort", "reliable"), read_only=True),
    ParamSpec("grounding_every_frames", 10, "after an instruction, ground every N frames (0: off)", low=0, high=10000),
    ParamSpec("grounding_every_seconds", 1.0, "... or every T seconds (0: off)", low=0.0, high=3600.0),
    ParamSpec("score_threshold", 0.5, "the probability a referent must reach to be published, returned by "
              "'ground' or planned on (calibrated when the model carries a calibration)", low=0.0, high=1.0),
    ParamSpec("scene_every_seconds", 5.0, "while grounding, start listing the whole scene ('scene': every label "
              "grounded, about 1 s on 2 cores, in steps between groundings) at most every T seconds (0: one after "
              "another); a put-command's goal pose waits for the first and avoids the last one",
              low=0.0, high=3600.0),
    ParamSpec("scene_max_age_seconds", 15.0, "a put-command's goal pose keeps clear of the objects of a listing "
              "started at most T seconds ago, and waits for a new one when the last is older (a camera or objects "
              "may have moved since; 0: a listing of any age)", low=0.0, high=86400.0),
    ParamSpec("debug_image", True, "publish 'debug_image' with boxes and labels drawn"),
    ParamSpec("instruction", "", "an instruction to start with (as if published on 'instruction')"),
    ParamSpec("guidance", 3.0, "classifier-free guidance scale for imagining", low=0.0, high=20.0),
    ParamSpec("cycle_threshold", CYCLE_THRESHOLD, "the mean IoU of the objects grounded back in an imagined "
              "scene under which the cycle check says it is not the goal", low=0.0, high=1.0),
    ParamSpec("decoder_map", False, "show imagined scenes drawn by the layout-reading decoder (it draws the "
              "layout's objects whatever the generator wrote; the cycle check never grades it)"),
    ParamSpec("target_frame", "", "the frame of 'detections_3d' and 'goal_pose' (e.g. base_link), reached through "
              "/tf and /tf_static; empty: the camera's optical frame (the colour frame's frame_id)"),
    ParamSpec("sync_tolerance", 0.05, "seconds between a colour frame's stamp and the depth frame paired with "
              "it (the nearest); none that near: 2D only", low=0.0, high=1.0),
    ParamSpec("depth_near", 0.1, "metres: nearer depth readings are no readings (the sensor's blind zone)",
              low=0.0, high=100.0),
    ParamSpec("depth_far", 10.0, "metres: farther depth readings are no readings (its noisy far end)",
              low=0.0, high=1000.0),
) + tuple(  # the input limits (echogen_ros.limits); their defaults follow the ECHOGEN_* environment
    ParamSpec(f.name, getattr(limits.starting(), f.name), f"limit: {f.metadata['doc']}",
              low=f.metadata["low"], high=f.metadata["high"], read_only=True)
    for f in limits.NODE_LIMITS
)  # fmt: skip
BY_NAME = {p.name: p for p in PARAMS}
# parameter → RuntimeConfig field; these take effect at once when set on a running node
RUNTIME_FIELDS = {
    "grounding_every_frames": "every_frames",
    "grounding_every_seconds": "every_seconds",
    "score_threshold": "score_threshold",
    "scene_every_seconds": "scene_every_seconds",
    "scene_max_age_seconds": "scene_max_age_seconds",
    "debug_image": "debug_image",
    "guidance": "guidance",
    "cycle_threshold": "cycle_threshold",
    "decoder_map": "decoder_map",
    "target_frame": "target_frame",  # these four: the runtime's SpaceConfig (depth and frames)
    "sync_tolerance": "sync_tolerance",
    "depth_near": "depth_near",
    "depth_far": "depth_far",
}


def limit_settings(values: dict[str, object]) -> limits.Limits:
    """The process's limits with those among parameter `values` (name → value) in place."""
    names = {f.name for f in limits.NODE_LIMITS}
    return limits.starting().with_values(**{name: int(v) for name, v in values.items() if name in names})


def runtime_settings(values: dict[str, object]) -> dict[str, object]:
    """The RuntimeConfig fields among parameter `values` (name → value), under their field names."""
    return {RUNTIME_FIELDS[name]: value for name, value in values.items() if name in RUNTIME_FIELDS}


def validate(name: str, value) -> str | None:
    """None if `value` is acceptable for parameter `name`, else the reason."""
    spec = BY_NAME.get(name)
    if spec is None:
        return f"unknown parameter {name!r}"
    if isinstance(spec.default, bool):
        return None if isinstance(value, bool) else f"{name} must be true or false"
    if isinstance(spec.default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name} must be a number"
        if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
            return f"{name}={value} is outside [{spec.low}, {spec.high}]"
        return None
    if not isinstance(value, str):
        return f"{name} must be a string"
    if spec.choices and value not in spec.choices:
        return f"{name}={value!r}; choose from {', '.join(spec.choices)}"
    if name == "device" and not (value == "cpu" or value == "cuda" or value.startswith("cuda:")):
        return f"device={value!r}; use cpu, cuda or cuda:N"
    if name == "target_frame" and (value.startswith("/") or any(c.isspace() for c in value)):
        return f"target_frame={value!r}: a tf2 frame id has no leading '/' and no spaces, e.g. base_link"
    return None


def validate_all(values: dict[str, object]) -> str | None:
    """None if every parameter of `values` (name → value) is acceptable and they agree, else the first reason."""
    for name, value in values.items():
        reason = validate(name, value)
        if reason:
            return reason
    near, far = (values.get(name, BY_NAME[name].default) for name in ("depth_near", "depth_far"))
    if near >= far:
        return f"depth_near={near} must be below depth_far={far}"
    return None
