"""Offline mode: run the runtime over a recorded rosbag2 in time order and write a new MCAP bag.

Input: a rosbag2 folder (or one .mcap / .db3 file) as ROS 2 Humble or Jazzy write it: sqlite3 or MCAP,
metadata versions 4 to 9, with or without stored message definitions and type hashes.

Output: a new MCAP bag (metadata version 8, which Humble and Jazzy read) holding every input message
unchanged, on its topic with its recorded QoS, plus this run's outputs under the namespace (`/echogen`):
detections, debug images, status, the scene's objects (every label grounded, at most every `scene_every_seconds`
of bag time, made whole before the grounding of its frame) and, when an instruction asks for a move or a pick-up,
the imagined goal scene and its goal layout.
With a depth topic (registered to the colour frames), the bag's CameraInfo and its /tf and /tf_static, also
detections_3d and, for a put-command, goal_pose, as the node publishes them; a frame is then grounded once its
depth had time to arrive (the bag's time past the frame's by sync_tolerance, or the next frame). Every
connection carries its complete message definition: the bag's own where it has one, else the one generated from
the typestore of the chosen distribution; an input type found in neither stops the run with one line naming it,
as ROS 2 tools could not read such an output.

Reprocessing: an input that already holds outputs on this run's output topics (an earlier `echogen bag`
output, or a recording of the live node) gets them replaced, not copied, so each output topic holds one
run's results; the summary counts the replaced messages. Another namespace keeps both.

An instruction given up front is stamped with the bag's first message time. A corrupt message is reported
and skipped; a bag that cannot be read stops the run with one line and leaves no output behind.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import apsw
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinitionFormat
from rosbags.rosbag2 import ReaderError, StoragePlugin, Writer
from rosbags.typesys.store import Typestore

from echogen_ros.interfaces import typestore
from echogen_ros.outputs import staged
from echogen_ros.planning.commands import PlanningError, parse_command
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.core import Runtime, RuntimeConfig
from echogen_ros.runtime.messages import MessageTypes

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO, TRANSFORMS = "sensor_msgs/msg/CameraInfo", "tf2_msgs/msg/TFMessage"
OUTPUTS = {
    "detections": "vision_msgs/msg/Detection2DArray",
    "debug_image": "sensor_msgs/msg/Image",
    "imagined": "sensor_msgs/msg/Image",
    "goal_layout": "echogen_ros/msg/Layout",
    "status": "std_msgs/msg/String",
    "scene": "vision_msgs/msg/Detection2DArray",
    "detections_3d": "vision_msgs/msg/Detection3DArray",
    "goal_pose": "geometry_msgs/msg/PoseStamped",
}
OUTPUT_VERSION = 8  # the newest rosbag2 metadata version that Humble's tools read as well as Jazzy's
# What rosbags raises on a damaged or foreign file: its own errors, sqlite's, and a truncated record's.
READ_ERRORS = (AnyReaderError, ReaderError, apsw.Error, struct.error, UnicodeDecodeError)


class BagError(ValueError):
    """An input bag that cannot be read or copied as asked: one line for the user."""


@dataclass
class BagSummary:
    messages: int = 0
    frames: int = 0
    groundings: int = 0
    imagined: int = 0
    replaced: int = 0
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Copy:
    """How one input connection is written out: its complete definition and type hash."""

    source: Connection
    msgdef: str
    rihs01: str


def output_topics(namespace: str) -> dict[str, str]:
    """Output name → topic, e.g. 'detections' → '/echogen/detections'."""
    if not namespace.startswith("/") or namespace.endswith("/"):
        raise ValueError(f"namespace {namespace!r} must start with '/' and not end with one, e.g. /echogen")
    return {name: f"{namespace}/{name}" for name in OUTPUTS}


def process_bag(
    source: Path,
    target: Path,
    model,
    image_topic: str | None = None,
    instruction_topic: str | None = None,
    instruction: str | None = None,
    namespace: str = "/echogen",
    config: RuntimeConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    distro: str = "humble",
    depth_topic: str | None = None,
) -> BagSummary:
    """Read `source`, write `target` (a new MCAP bag) all at once: it is written to a hidden sibling and
    renamed into place when complete, so a failure or a signal never leaves a partial `target`. `depth_topic`:
    default, the first sensor_msgs/Image topic whose name says depth (none: 2D only)."""
    source, target = Path(source), Path(target)
    if not source.exists():
        raise FileNotFoundError(f"input bag {source} does not exist")
    if target.exists():
        raise FileExistsError(f"output bag {target} exists; choose a new path")
    topics = output_topics(namespace)
    with staged(target, kind="echogen bag") as partial:
        return _process(source, partial, model, image_topic, instruction_topic, instruction, topics, config,
                        progress, distro, depth_topic)  # fmt: skip


@contextmanager
def _open_bag(source: Path, store: Typestore) -> Iterator[AnyReader]:
    """`source` opened with rosbags; a file that is no readable rosbag2 becomes one BagError line."""
    if source.suffix == ".bag":
        raise BagError(f"{source} is a ROS 1 bag; convert it to rosbag2 first (rosbags-convert)")
    try:
        reader = AnyReader([source], default_typestore=store)
        reader.open()
    except FileNotFoundError as exc:  # a folder without metadata.yaml
        raise BagError(f"{source} is not a rosbag2 bag: {_one_line(exc)}") from exc
    except READ_ERRORS as exc:
        raise BagError(f"cannot read input bag {source}: {_one_line(exc)}") from exc
    try:
        yield reader
    finally:
        reader.close()


def _read_messages(reader: AnyReader, source: Path) -> Iterator[tuple[Connection, int, bytes]]:
    """The bag's messages in time order; damage found on the way becomes one BagError line."""
    try:
        yield from reader.messages()
    except READ_ERRORS as exc:
        raise BagError(f"cannot read input bag {source} to the end: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    """The first line of an error's text (a YAML error spans several), or its type when it has none."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _has_definition(connection: Connection) -> bool:
    return connection.msgdef.format != MessageDefinitionFormat.NONE and bool(connection.msgdef.data.strip())


def _plan_copies(reader: AnyReader, store: Typestore, outputs: dict[str, str]) -> list[_Copy]:
    """The input connections to copy (old outputs left out), each with a complete definition."""
    copies, unknown = [], []
    for connection in reader.connections:
        if connection.topic in outputs:
            _check_output_type(connection, outputs[connection.topic])
        elif _has_definition(connection):
            digest = connection.digest or reader.typestore.hash_rihs01(connection.msgtype)
            copies.append(_Copy(connection, connection.msgdef.data, digest))
        elif connection.msgtype in store.fielddefs:
            msgdef, _ = store.generate_msgdef(connection.msgtype, ros_version=2)
            copies.append(_Copy(connection, msgdef, store.hash_rihs01(connection.msgtype)))
        else:
            unknown.append(f"{connection.topic} ({connection.msgtype})")
    if unknown:
        raise BagError(f"no message definition in the bag nor in the typestore for {', '.join(unknown)}; store "
                       "the definitions by converting the bag to MCAP where those packages are installed "
                       "(ros2 bag convert), then run again")  # fmt: skip
    return copies


def _check_output_type(connection: Connection, kind: str) -> None:
    if connection.msgtype != kind:
        raise BagError(f"input topic {connection.topic} has type {connection.msgtype}, but echogen writes {kind} "
                       "there; choose another namespace (--namespace)")  # fmt: skip


def _add_copies(writer: Writer, copies: list[_Copy]) -> dict[int, Connection]:
    """Input connection id → output connection; inputs with the same topic, type and QoS share one."""
    written: dict[int, Connection] = {}
    for copy in copies:
        source = copy.source
        ext = ConnectionExtRosbag2(source.ext.serialization_format, list(source.ext.offered_qos_profiles))
        same = [c for c in writer.connections if (c.topic, c.msgtype, c.ext) == (source.topic, source.msgtype, ext)]
        written[source.id] = same[0] if same else writer.add_connection(
            source.topic, source.msgtype, msgdef=copy.msgdef, rihs01=copy.rihs01,
            serialization_format=ext.serialization_format, offered_qos_profiles=ext.offered_qos_profiles,
        )  # fmt: skip
    return written


def _pick_topic(
    reader: AnyReader, given: str | None, types: tuple[str, ...], what: str, outputs: dict[str, str]
) -> str | None:
    """The topic to read `what` from: the one given, else the first fitting one that is not an output."""
    topics = {c.topic: c.msgtype for c in reader.connections}
    if given:
        if given not in topics:
            raise ValueError(f"{what} topic {given!r} is not in the bag; it has {', '.join(sorted(topics))}")
        if topics[given] not in types:
            raise ValueError(f"{what} topic {given!r} has type {topics[given]}, expected {' or '.join(types)}")
        if given in outputs:
            raise ValueError(f"{what} topic {given!r} is one this run writes; choose another namespace (--namespace)")
        return given
    matches = sorted(t for t, kind in topics.items() if kind in types and t not in outputs)
    named = {"instruction": lambda t: "instruction" in t, "depth": lambda t: "depth" in t,
             "image": lambda t: "depth" not in t}.get(what, lambda t: True)  # fmt: skip
    preferred = [t for t in matches if named(t)] or ([] if what == "depth" else matches)
    return preferred[0] if preferred else None


def _process(source, target, model, image_topic, instruction_topic, instruction, topics, config, progress, distro,
             depth_topic):  # fmt: skip
    outputs = {topic: OUTPUTS[name] for name, topic in topics.items()}  # output topic → type
    store = typestore(distro)
    msgs = MessageTypes.from_typestore(store)
    runtime = Runtime(model, msgs, config or RuntimeConfig(every_frames=1, every_seconds=0.0))
    summary = BagSummary()
    with _open_bag(source, store) as reader:
        image = _pick_topic(reader, image_topic, IMAGE_TYPES, "image", outputs)
        if image is None:
            raise ValueError("the bag has no sensor_msgs/Image or CompressedImage topic")
        instructions = _pick_topic(reader, instruction_topic, ("std_msgs/msg/String",), "instruction", outputs)
        if depth_topic is not None and depth_topic == image:
            raise ValueError(f"depth topic {depth_topic!r} is the image topic; give the depth registered to it")
        depth = _pick_topic(reader, depth_topic, ("sensor_msgs/msg/Image",), "depth", {**outputs, image: ""})
        space = {c.topic for c in reader.connections if c.msgtype in (CAMERA_INFO, TRANSFORMS)} if depth else set()
        copies = _plan_copies(reader, store, outputs)
        with Writer(target, version=OUTPUT_VERSION, storage_plugin=StoragePlugin.MCAP) as writer:
            written = _add_copies(writer, copies)
            out = {name: writer.add_connection(topic, OUTPUTS[name], typestore=store) for name, topic in topics.items()}
            state = _BagState(runtime, msgs, store, writer, out, summary, depth is not None)
            total = reader.message_count
            for k, (connection, timestamp, raw) in enumerate(_read_messages(reader, source)):
                if k == 0 and instruction:
                    state.instruct(instruction, timestamp)  # in force from the bag's first message
                state.ground_waiting(timestamp, connection.topic == image)
                if connection.id not in written:
                    summary.replaced += 1  # an old output on an output topic: this run writes its own
                else:
                    writer.write(written[connection.id], timestamp, raw)
                    summary.messages += 1
                if connection.topic in (image, instructions, depth) or connection.topic in space:
                    state.handle(reader, connection, timestamp, raw, image, depth)
                if progress:
                    progress(k + 1, total)
            state.ground_waiting(None, False)
    summary.groundings = runtime.counters.groundings
    return summary


@dataclass
class _BagState:
    """The runtime and the output connections, fed one input message at a time."""

    runtime: Runtime
    msgs: MessageTypes
    store: Typestore
    writer: Writer
    out: dict[str, Connection]  # output name ('detections') → connection
    summary: BagSummary
    with_depth: bool = False  # a frame waits for its depth before it is grounded
    pending_goal: str | None = None
    waiting: int | None = None  # the bag time of a frame taken in but not grounded yet (its depth may follow)

    def write(self, name: str, message, timestamp: int) -> None:
        self.writer.write(self.out[name], timestamp, self.store.serialize_cdr(message, OUTPUTS[name]))

    def handle(self, reader: AnyReader, connection: Connection, timestamp: int, raw: bytes, image: str,
               depth: str | None) -> None:  # fmt: skip
        """Decode one image, instruction, depth, camera_info or transforms message and hand it to the runtime."""
        try:
            message = self.decode(reader, connection, raw)
        except Exception as exc:  # noqa: BLE001 - any decoding failure of one message is reported and skipped
            problem = f"skipped {connection.topic} @ {timestamp}: cannot deserialize ({exc})"
            self.summary.skipped.append(problem)
            self.write("status", conv.string(self.msgs, problem), timestamp)
            return
        if connection.topic == image:
            self.frame(message, connection.msgtype, timestamp)
        elif connection.topic == depth:
            self.said(self.runtime.on_depth(message), timestamp)
        elif connection.msgtype == CAMERA_INFO:
            self.said(self.runtime.on_camera_info(message), timestamp)
        elif connection.msgtype == TRANSFORMS:
            self.said(self.runtime.on_transforms(message), timestamp)
        else:
            self.instruct(message.data, timestamp)

    def said(self, problem: str | None, timestamp: int) -> None:
        if problem:
            self.summary.skipped.append(problem)
            self.write("status", conv.string(self.msgs, problem), timestamp)

    def decode(self, reader: AnyReader, connection: Connection, raw: bytes):
        """With the bag's own definition where it has one, else with the typestore's."""
        if _has_definition(connection):
            return reader.deserialize(raw, connection.msgtype)
        return self.store.deserialize_cdr(raw, connection.msgtype)

    def instruct(self, text: str, timestamp: int) -> None:
        self.write("status", conv.string(self.msgs, self.runtime.on_instruction(text)), timestamp)
        try:
            command = parse_command(text)
        except PlanningError:
            return
        if command.action in ("put", "pick"):
            self.pending_goal = text  # imagined on the next frame

    def frame(self, message, msgtype: str, timestamp: int) -> None:
        now = timestamp / 1e9
        intake = self.runtime.on_compressed if msgtype.endswith("CompressedImage") else self.runtime.on_image
        problem = intake(message, now)
        if problem:
            self.said(problem, timestamp)
            return
        self.summary.frames += 1
        if self.with_depth:
            self.waiting = timestamp
        else:
            self.ground(timestamp)

    def ground_waiting(self, now: int | None, next_frame: bool) -> None:
        """Ground the frame waiting for its depth once the bag's time `now` is sync_tolerance past it, a next
        frame comes, or the bag ends (None)."""
        if self.waiting is None:
            return
        tolerance = int(self.runtime.config.space.sync_tolerance * 1e9)
        if now is None or next_frame or now > self.waiting + tolerance:
            timestamp, self.waiting = self.waiting, None
            self.ground(timestamp)

    def ground(self, timestamp: int) -> None:
        """Ground the latest frame (taken in at bag time `timestamp`); write the outputs at that time."""
        listed, outputs = self.runtime.replay_step(timestamp / 1e9)
        named = {"scene": listed.scene}
        if outputs is not None:
            named |= {"detections": outputs.detections, "debug_image": outputs.debug_image,
                      "detections_3d": outputs.detections_3d, "goal_pose": outputs.goal_pose}  # fmt: skip
        for name, message in named.items():
            if message is not None:  # detections None: the model could not take this frame (see status)
                self.write(name, message, timestamp)
        for said in (listed.status, outputs.status if outputs is not None else None):
            if said:
                self.write("status", conv.string(self.msgs, said), timestamp)
        if self.pending_goal:
            self._imagine(self.pending_goal, timestamp)
            self.pending_goal = None

    def _imagine(self, text: str, timestamp: int) -> None:
        header = self.runtime.latest.peek().header
        goal = self.msgs.ImagineGoal(
            instruction=text, layout=conv.empty_layout(self.msgs, header), seed=0, guidance=0.0
        )
        result = self.runtime.imagine(goal)
        if result.success:
            self.write("imagined", result.image, timestamp)
            self.write("goal_layout", result.goal_layout, timestamp)
            self.summary.imagined += 1
        self.write("status", conv.string(self.msgs, f"imagine {text!r}: {result.message}"), timestamp)
