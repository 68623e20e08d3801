"""`echogen bag` on bags that ROS 2's own `ros2 bag record` wrote (sqlite3, Humble's default, and MCAP) from a
live `sim_camera` and an instruction publisher; its outputs read by `ros2 bag info`, played by `ros2 bag play`
and fed to `echogen bag` again; and played back into a live echogen node, which grounds the frames as the
offline run did (same stamps, same boxes).

Runs under `colcon test` (the ROS venv's Python, the colcon install sourced). It needs ROS 2: without `ros2`
it fails rather than skips. Every process it starts runs in its own session on its own ROS domain and is
stopped on the way out.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image
from std_msgs.msg import String
from vision_msgs.msg import Detection2DArray

DOMAIN_ID = 63
TOPICS = ["/image", "/camera_info", "/sim_camera/ground_truth", "/instruction"]
INSTRUCTIONS = ["find the plate", "find the plate", "put the cup left of the plate", "find the cup"]
# the recording played into a live node at a quarter of its speed: the node grounds what it can of a stream (each of
# these bare categories runs the category check, 2.8 x a plain find; a loaded CPU slows it more), and the test
# compares frames both groundings saw (CI once had 2 live groundings of the 11 offline at full speed)
LIVE_RATE = 0.25
OUTPUT_PREFIX = "/echogen/"


def _env() -> dict[str, str]:
    return {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID), "PYTHONUNBUFFERED": "1"}


def _stop(process: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 20.0) -> None:
    """Send `sig` to the process's group, wait, then kill what is left of the group."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with suppress(ProcessLookupError):  # `ros2 run` leaves its node behind when it is stopped alone
        os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def _started(command: list[str], log: Path) -> Iterator[subprocess.Popen]:
    """`command` in its own session, output to `log`; stopped with SIGINT (then killed) on leaving."""
    with log.open("w") as out:
        process = subprocess.Popen(command, env=_env(), cwd=log.parent, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
        try:
            yield process
        finally:
            _stop(process)


def _run(command: list[str], cwd: Path, timeout: float = 180.0) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=_env(), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    """A node of this test process on the test's ROS domain."""
    if shutil.which("ros2") is None:
        pytest.fail("`ros2` is not on PATH: source ROS 2 and the colcon install (this test runs under colcon test)")
    context = Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    test_node = rclpy.create_node("bag_test", context=context)
    try:
        yield test_node
    finally:
        test_node.destroy_node()
        rclpy.shutdown(context=context)


def _spin_until(node: Node, done: Callable[[], bool], timeout: float) -> bool:
    """Spin `node` until `done()` or `timeout` seconds; whether it is done."""
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    executor.remove_node(node)
    executor.shutdown()
    return done()


def _recording(node: Node, recorders: int) -> bool:
    """Whether the camera publishes and every recorder subscribes to the image and the instruction."""
    return (
        node.count_publishers("/image") >= 1
        and node.count_subscribers("/image") >= recorders
        and node.count_subscribers("/instruction") >= recorders
    )


@pytest.fixture(scope="module")
def recordings(node: Node, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Bags recorded by `ros2 bag record` in sqlite3 and MCAP: sim_camera frames plus instructions."""
    root = tmp_path_factory.mktemp("recorded")
    bags = {storage: root / storage for storage in ("sqlite3", "mcap")}
    publisher = node.create_publisher(String, "/instruction", 10)
    camera = ["ros2", "run", "echogen_ros", "sim_camera", "--ros-args", "-p", "width:=160", "-p", "height:=120"]
    with ExitStack() as stack:
        stack.enter_context(_started([*camera, "-p", "fps:=10.0"], root / "sim_camera.log"))
        recorders = []
        for storage, bag in bags.items():
            command = ["ros2", "bag", "record", "-s", storage, "-o", str(bag), *TOPICS]
            recorders.append(stack.enter_context(_started(command, root / f"record_{storage}.log")))
        assert _spin_until(node, lambda: _recording(node, len(recorders)), 60.0), f"nothing recording; see {root}"
        for text in INSTRUCTIONS:
            publisher.publish(String(data=text))
            _spin_until(node, lambda: False, 0.7)
        _spin_until(node, lambda: False, 1.5)
        for recorder in recorders:  # SIGINT: the recorder closes the bag and writes metadata.yaml
            _stop(recorder)
    node.destroy_publisher(publisher)
    for bag in bags.values():
        assert (bag / "metadata.yaml").is_file(), f"no metadata.yaml in {bag}; see {root}"
    return bags


def _messages(bag: Path) -> list[tuple[str, int, bytes]]:
    with Reader(bag) as reader:
        return [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]


def _inputs_of(messages: list[tuple[str, int, bytes]]) -> list[tuple[str, int, bytes]]:
    return sorted(m for m in messages if not m[0].startswith(OUTPUT_PREFIX))


def _count(messages: list[tuple[str, int, bytes]], topic: str) -> int:
    return sum(1 for m in messages if m[0] == topic)


def _echogen_bag(source: Path, target: Path, *extra: str) -> dict:
    """`python -m echogen_ros bag` (the installed package: run outside the source tree); its summary."""
    command = [sys.executable, "-m", "echogen_ros", "bag", "--in", str(source), "--out", str(target),
               "--every-frames", "5", *extra]  # fmt: skip
    result = _run(command, cwd=target.parent)
    return json.loads(result.stdout.splitlines()[-1])


def _check_with_ros2_tools(bag: Path) -> None:
    info = _run(["ros2", "bag", "info", str(bag)], cwd=bag.parent, timeout=60).stdout
    assert "/echogen/detections" in info and "vision_msgs/msg/Detection2DArray" in info, info


def _play(node: Node, bag: Path) -> dict[str, int]:
    """`ros2 bag play` the bag (which also publishes echogen_ros/Layout); the detections and imagined scenes
    this node received."""
    received = {"detections": 0, "imagined": 0}

    def count(name: str):
        return lambda _message: received.__setitem__(name, received[name] + 1)

    subscriptions = [
        node.create_subscription(Detection2DArray, "/echogen/detections", count("detections"), 10),
        node.create_subscription(Image, "/echogen/imagined", count("imagined"), 10),
    ]
    try:
        with _started(["ros2", "bag", "play", "-d", "1.0", str(bag)], bag.parent / f"play_{bag.name}.log") as play:
            _spin_until(node, lambda: play.poll() is not None, 90.0)
            assert play.returncode == 0, f"ros2 bag play exited {play.returncode}"
        _spin_until(node, lambda: False, 0.5)  # the last messages in flight
    finally:
        for subscription in subscriptions:
            node.destroy_subscription(subscription)
    return received


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_recorded_bag_through_echogen_bag_and_back(
    node: Node, recordings: dict[str, Path], tmp_path: Path, storage: str
) -> None:
    source = recordings[storage]
    meta = yaml.safe_load((source / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == storage
    recorded = _messages(source)
    assert _count(recorded, "/image") >= 10 and _count(recorded, "/instruction") == len(INSTRUCTIONS), meta

    first, second = tmp_path / "out", tmp_path / "again"
    summary = _echogen_bag(source, first, "--instruction", "find the cup")
    once = _messages(first)
    assert _inputs_of(once) == sorted(recorded)  # every recorded message, unchanged
    assert summary["frames"] == _count(recorded, "/image") and summary["imagined"] == 1, summary
    detections = _count(once, "/echogen/detections")
    assert detections >= 2
    status_time = min(t for topic, t, _ in once if topic == "/echogen/status")
    assert status_time == min(t for _, t, _ in recorded)  # --instruction: at the first message, not at 0
    with Reader(first) as reader:
        assert all(c.msgdef.data.strip() and c.digest for c in reader.connections)  # complete schemas
    _check_with_ros2_tools(first)
    received = _play(node, first)
    assert received["detections"] >= 1 and received["imagined"] == 1, received

    again = _echogen_bag(first, second)  # its own output: old outputs replaced, not doubled
    twice = _messages(second)
    assert _inputs_of(twice) == sorted(recorded)
    assert again["replaced"] == len(once) - len(recorded) and again["frames"] == summary["frames"], again
    assert _count(twice, "/echogen/goal_layout") == 1 and _count(twice, "/echogen/detections") >= 2
    _check_with_ros2_tools(second)


def _live_detections(node: Node, bag: Path) -> dict[tuple[int, int], list]:
    """Play `bag` into a live echogen node (grounding every frame); its /detections by camera stamp."""
    received: dict[tuple[int, int], list] = {}

    def keep(message) -> None:
        stamp = (message.header.stamp.sec, message.header.stamp.nanosec)
        received[stamp] = [(d.results[0].hypothesis.class_id, d.bbox, d.results[0].hypothesis.score)
                           for d in message.detections]  # fmt: skip

    subscription = node.create_subscription(Detection2DArray, "/detections", keep, 50)
    command = ["ros2", "run", "echogen_ros", "echogen_node", "--ros-args", "-p", "grounding_every_frames:=1"]
    try:
        with _started(command, bag.parent / "live_node.log"):
            active = _spin_until(node, lambda: node.count_subscribers("/image") >= 1, 90.0)
            assert active, "the node never became active"
            play_live = ["ros2", "bag", "play", "--rate", str(LIVE_RATE), str(bag)]
            with _started(play_live, bag.parent / "play_live.log") as play:
                _spin_until(node, lambda: play.poll() is not None, 90.0)
                assert play.returncode == 0, f"ros2 bag play exited {play.returncode}"
            _spin_until(node, lambda: False, 1.0)
    finally:
        node.destroy_subscription(subscription)
    return received


def test_played_back_into_the_live_node_it_grounds_as_offline(
    node: Node, recordings: dict[str, Path], tmp_path: Path
) -> None:
    grounded = tmp_path / "grounded"
    _echogen_bag(recordings["sqlite3"], grounded)
    offline = {}
    with AnyReader([grounded]) as reader:  # decoded with the definitions stored in the bag
        wanted = [c for c in reader.connections if c.topic == "/echogen/detections"]
        for connection, _, raw in reader.messages(connections=wanted):
            message = reader.deserialize(raw, connection.msgtype)
            offline[(message.header.stamp.sec, message.header.stamp.nanosec)] = [
                (d.results[0].hypothesis.class_id, d.bbox, d.results[0].hypothesis.score) for d in message.detections
            ]
    live = _live_detections(node, grounded)
    both = [stamp for stamp in offline if stamp in live and offline[stamp] and live[stamp]
            and [c for c, _, _ in offline[stamp]] == [c for c, _, _ in live[stamp]]]  # fmt: skip
    assert len(both) >= 2, f"{len(offline)} offline and {len(live)} live groundings share too few frames"
    for stamp in both:
        for (_, want, want_score), (_, got, got_score) in zip(offline[stamp], live[stamp]):
            assert abs(want.center.position.x - got.center.position.x) <= 1.0, stamp
            assert abs(want.center.position.y - got.center.position.y) <= 1.0, stamp
            assert abs(want.size_x - got.size_x) <= 1.0 and abs(want.size_y - got.size_y) <= 1.0, stamp
            assert abs(want_score - got_score) <= 0.02, stamp
