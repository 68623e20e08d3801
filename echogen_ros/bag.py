"""Offline mode: run the runtime over a recorded rosbag2 (MCAP or sqlite3) in time order and write a new
MCAP bag with the input topics plus detections, debug images, status and, when an instruction asks for
a move, the imagined goal scene and its goal layout. Message definitions are stored in the bag, so ROS 2
tools read it. A corrupt message is reported and skipped."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer

from echogen_ros.interfaces import typestore
from echogen_ros.planning.commands import PlanningError, parse_command
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.core import Runtime, RuntimeConfig
from echogen_ros.runtime.messages import MessageTypes

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
OUTPUTS = {
    "detections": "vision_msgs/msg/Detection2DArray",
    "debug_image": "sensor_msgs/msg/Image",
    "imagined": "sensor_msgs/msg/Image",
    "goal_layout": "echogen_ros/msg/Layout",
    "status": "std_msgs/msg/String",
}


@dataclass
class BagSummary:
    messages: int = 0
    frames: int = 0
    groundings: int = 0
    imagined: int = 0
    skipped: list[str] = field(default_factory=list)


def _pick_topic(reader: AnyReader, given: str | None, types: tuple[str, ...], what: str) -> str | None:
    topics = {c.topic: c.msgtype for c in reader.connections}
    if given:
        if given not in topics:
            raise ValueError(f"{what} topic {given!r} is not in the bag; it has {', '.join(sorted(topics))}")
        if topics[given] not in types:
            raise ValueError(f"{what} topic {given!r} has type {topics[given]}, expected {' or '.join(types)}")
        return given
    matches = sorted(t for t, kind in topics.items() if kind in types)
    preferred = [t for t in matches if what == "instruction" and "instruction" in t] or matches
    return preferred[0] if preferred else None


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
) -> BagSummary:
    """Read `source`, write `target` (MCAP, bag format version 8 so Humble reads it)."""
    source, target = Path(source), Path(target)
    if not source.exists():
        raise FileNotFoundError(f"input bag {source} does not exist")
    if target.exists():
        raise FileExistsError(f"output bag {target} exists; choose a new path")
    try:
        return _process(source, target, model, image_topic, instruction_topic, instruction, namespace, config,
                        progress, distro)  # fmt: skip
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # no partial output bag
        raise


def _process(source, target, model, image_topic, instruction_topic, instruction, namespace, config, progress, distro):
    store = typestore(distro)
    msgs = MessageTypes.from_typestore(store)
    runtime = Runtime(model, msgs, config or RuntimeConfig(every_frames=1, every_seconds=0.0))
    summary = BagSummary()
    with AnyReader([source], default_typestore=store) as reader:
        image = _pick_topic(reader, image_topic, IMAGE_TYPES, "image")
        if image is None:
            raise ValueError("the bag has no sensor_msgs/Image or CompressedImage topic")
        instructions = _pick_topic(reader, instruction_topic, ("std_msgs/msg/String",), "instruction")
        with Writer(target, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
            copies = {c.id: writer.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data, rihs01=c.digest)
                      for c in reader.connections}  # fmt: skip
            out = {
                name: writer.add_connection(f"{namespace}/{name}", kind, typestore=store)
                for name, kind in OUTPUTS.items()
            }
            state = _BagState(runtime, msgs, store, writer, out, summary)
            if instruction:
                state.instruct(instruction, 0)
            total = reader.message_count
            for k, (connection, timestamp, raw) in enumerate(reader.messages()):
                writer.write(copies[connection.id], timestamp, raw)
                summary.messages += 1
                if connection.topic in (image, instructions):
                    try:
                        message = reader.deserialize(raw, connection.msgtype)
                    except Exception as exc:  # noqa: BLE001 - any decoding failure of one message is reported and skipped
                        problem = f"skipped {connection.topic} @ {timestamp}: cannot deserialize ({exc})"
                        summary.skipped.append(problem)
                        state.write("status", conv.string(msgs, problem), timestamp)
                        continue
                    if connection.topic == image:
                        state.frame(message, connection.msgtype, timestamp)
                    else:
                        state.instruct(message.data, timestamp)
                if progress:
                    progress(k + 1, total)
    summary.groundings = runtime.counters.groundings
    return summary


class _BagState:
    def __init__(self, runtime: Runtime, msgs, store, writer, out, summary: BagSummary) -> None:
        self.runtime, self.msgs, self.store, self.writer, self.out, self.summary = (
            runtime,
            msgs,
            store,
            writer,
            out,
            summary,
        )
        self.pending_goal: str | None = None

    def write(self, name: str, message, timestamp: int) -> None:
        self.writer.write(self.out[name], timestamp, self.store.serialize_cdr(message, OUTPUTS[name]))

    def instruct(self, text: str, timestamp: int) -> None:
        self.write("status", conv.string(self.msgs, self.runtime.on_instruction(text)), timestamp)
        try:
            command = parse_command(text)
        except PlanningError:
            return
        if command.action == "put":
            self.pending_goal = text  # imagined on the next frame

    def frame(self, message, msgtype: str, timestamp: int) -> None:
        now = timestamp / 1e9
        intake = self.runtime.on_compressed if msgtype.endswith("CompressedImage") else self.runtime.on_image
        problem = intake(message, now)
        if problem:
            self.summary.skipped.append(problem)
            self.write("status", conv.string(self.msgs, problem), timestamp)
            return
        self.summary.frames += 1
        outputs = self.runtime.step(now)
        if outputs is not None:
            self.write("detections", outputs.detections, timestamp)
            if outputs.debug_image is not None:
                self.write("debug_image", outputs.debug_image, timestamp)
            self.write("status", conv.string(self.msgs, outputs.status), timestamp)
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
