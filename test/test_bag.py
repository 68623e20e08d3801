"""`echogen bag` end to end: a bag written here (world frames + instructions, plus one corrupt
message) → the output bag read back with rosbags. Inputs also come in the shapes older rosbag2 versions
write (Humble: sqlite3 without message definitions, metadata version 5), as the tool's own output, and
damaged."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader
from rosbags.interfaces import MessageDefinitionFormat
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from echogen_ros.bag import BagError, process_bag
from echogen_ros.cli import main
from echogen_ros.interfaces import typestore
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.messages import MessageTypes
from echogen_ros.world.dataset import world_sample

STORE = typestore("humble")
MSGS = MessageTypes.from_typestore(STORE)
START = 1_717_000_000 * 10**9  # a recording made in 2024, in ns
# Humble's sqlite3 storage (schema version 3): no message_definitions table, no type hashes.
HUMBLE_SQLITE = """
DROP TABLE message_definitions;
ALTER TABLE topics DROP COLUMN type_description_hash;
UPDATE schema SET schema_version = 3, ros_distro = '';
DELETE FROM metadata;
VACUUM;
"""


def _write_input(
    path: Path,
    storage: StoragePlugin,
    compressed: bool = False,
    corrupt: bool = True,
    image_topic: str = "/camera/image",
    version: int = 8,
) -> None:
    """Six frames (the fifth cut short when `corrupt`), a 'put' instruction before the second."""
    with Writer(path, version=version, storage_plugin=storage) as writer:
        kind = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        images = writer.add_connection(image_topic, kind, typestore=STORE)
        texts = writer.add_connection("/instruction", "std_msgs/msg/String", typestore=STORE)
        for i in range(6):
            stamp = START + 1_000_000_000 * (i + 1)
            if i == 1:
                writer.write(
                    texts,
                    stamp - 1,
                    STORE.serialize_cdr(conv.string(MSGS, "put the cup above the plate"), "std_msgs/msg/String"),
                )
            rgb = world_sample(0, i // 3, "test").image(160, 120)
            header = conv.header(MSGS, stamp / 1e9, "cam")
            if compressed:
                ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                message = MSGS.CompressedImage(
                    header=header, format="bgr8; jpeg compressed bgr8", data=MSGS.payload(jpeg.tobytes())
                )
            else:
                message = conv.image_message(MSGS, rgb, header)
            raw = STORE.serialize_cdr(message, kind)
            writer.write(images, stamp, raw[: len(raw) // 3] if corrupt and i == 4 else raw)  # frame 4 is corrupt


def _as_written_by_older_rosbag2(bag: Path, version: int) -> None:
    """Rewrite a rosbags-written bag into the shape of rosbag2 metadata `version` (4, 5: Humble)."""
    meta_path = bag / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    info = meta["rosbag2_bagfile_information"]
    info["version"] = version
    info.pop("ros_distro")
    for topic in info["topics_with_message_count"]:
        if version < 7:
            topic["topic_metadata"].pop("type_description_hash")
    if version < 6:
        info.pop("custom_data")
    if version < 5:
        info.pop("files")
    meta_path.write_text(yaml.safe_dump(meta))
    if info["storage_identifier"] == "sqlite3" and version < 6:
        with sqlite3.connect(bag / f"{bag.name}.db3") as db:
            db.executescript(HUMBLE_SQLITE)


def _messages(bag: Path) -> list[tuple[str, int, bytes]]:
    """(topic, timestamp, raw) of every message in the bag."""
    with Reader(bag) as reader:
        return [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]


def _decoded(bag: Path, prefix: str = "/echogen/") -> dict[str, list[tuple[int, object]]]:
    """Topic → (timestamp, message) under `prefix`, decoded with the bag's own definitions only."""
    by_topic: dict[str, list] = {}
    with AnyReader([bag]) as reader:  # no typestore given: definitions come from the bag
        for connection, timestamp, raw in reader.messages():
            message = reader.deserialize(raw, connection.msgtype)  # every message: the schemas are complete
            if connection.topic.startswith(prefix):
                by_topic.setdefault(connection.topic, []).append((timestamp, message))
    return by_topic


def _assert_definitions_complete(bag: Path) -> None:
    with Reader(bag) as reader:
        for connection in reader.connections:
            assert connection.msgdef.format == MessageDefinitionFormat.MSG, connection.topic
            assert connection.msgdef.data.strip() and connection.digest.startswith("RIHS01_"), connection.topic
            if connection.msgtype == "sensor_msgs/msg/Image":  # nested types are spelled out too
                assert "MSG: std_msgs/Header" in connection.msgdef.data, connection.msgdef.data


def _run_bag(source: Path, target: Path, model: Path, *extra: str) -> int:
    args = ["bag", "--in", str(source), "--out", str(target), "--model", str(model), "--score-threshold", "0"]
    return main([*args, *extra])


@pytest.mark.parametrize(("storage", "compressed"), [(StoragePlugin.MCAP, False), (StoragePlugin.SQLITE3, True)])
def test_bag_end_to_end(tiny_model_dir: Path, tmp_path: Path, capsys, storage, compressed: bool) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    _write_input(source, storage, compressed)
    assert _run_bag(source, target, tiny_model_dir) == 0
    out = capsys.readouterr().out
    assert "skipped:" in out and "/camera/image" in out  # the corrupt frame is reported
    with AnyReader([target]) as reader:  # no typestore given: definitions come from the bag
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert (
            topics["/camera/image"].endswith("Image")
            and topics["/echogen/detections"] == "vision_msgs/msg/Detection2DArray"
        )
        by_topic: dict[str, list] = {}
        for connection, _, raw in reader.messages():
            if connection.topic.startswith("/echogen/"):
                by_topic.setdefault(connection.topic, []).append(reader.deserialize(raw, connection.msgtype))
    detections = by_topic["/echogen/detections"]
    assert len(detections) == 4  # frames 1, 2, 3, 5: frame 0 precedes the instruction, frame 4 is corrupt
    for array in detections:
        assert array.header.frame_id == "cam" and len(array.detections) == 2
        assert [d.results[0].hypothesis.class_id for d in array.detections] == ["the cup", "the plate"]
    assert len(by_topic["/echogen/debug_image"]) == 4
    (imagined,) = by_topic["/echogen/imagined"]
    assert (imagined.width, imagined.height) == (160, 120)
    (layout,) = by_topic["/echogen/goal_layout"]
    assert layout.width == 160 and len(layout.objects) == 2
    statuses = [s.data for s in by_topic["/echogen/status"]]
    assert any("skipped" in s and "/camera/image" in s for s in statuses), statuses


@pytest.mark.parametrize(
    ("storage", "version"),
    [
        pytest.param(StoragePlugin.SQLITE3, 5, id="sqlite3-v5"),  # `ros2 bag record` on Humble
        pytest.param(StoragePlugin.SQLITE3, 4, id="sqlite3-v4"),  # older Humble releases
        pytest.param(StoragePlugin.MCAP, 5, id="mcap-v5"),  # `ros2 bag record -s mcap` on Humble: no type hashes
        pytest.param(StoragePlugin.SQLITE3, 7, id="sqlite3-v7"),
        pytest.param(StoragePlugin.MCAP, 8, id="mcap-v8"),
        pytest.param(StoragePlugin.SQLITE3, 9, id="sqlite3-v9"),  # Jazzy
    ],
)
def test_recorded_bags_of_every_version(tiny_model_dir: Path, tmp_path: Path, capsys, storage, version: int) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    _write_input(source, storage, corrupt=False, version=9 if version == 9 else 8)
    if version < 8:
        _as_written_by_older_rosbag2(source, version)
    with Reader(source) as reader:  # the input has the shape asked for
        assert all(c.digest == "" for c in reader.connections) == (version < 7)
        no_definitions = storage == StoragePlugin.SQLITE3 and version < 6
        assert all(c.msgdef.format == MessageDefinitionFormat.NONE for c in reader.connections) == no_definitions
    assert _run_bag(source, target, tiny_model_dir, "--instruction", "find the cup") == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["frames"] == 6
    inputs, outputs = _messages(source), _messages(target)
    assert sorted(inputs) == sorted(m for m in outputs if not m[0].startswith("/echogen/"))  # every message copied
    _assert_definitions_complete(target)
    decoded = _decoded(target)
    assert len(decoded["/echogen/detections"]) == 6  # the instruction is in force from the first frame
    first = min(t for _, t, _ in inputs)
    stamp, status = decoded["/echogen/status"][0]
    assert stamp == first and "find the cup" in status.data  # not at time 0: the bag spans its recording only
    assert min(t for _, t, _ in outputs) == first


def test_own_output_goes_through_again(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    source, first, second = tmp_path / "in", tmp_path / "out1", tmp_path / "out2"
    _write_input(source, StoragePlugin.MCAP, corrupt=False, image_topic="/image")
    assert _run_bag(source, first, tiny_model_dir) == 0
    assert _run_bag(first, second, tiny_model_dir) == 0
    out = capsys.readouterr().out
    once, twice = _messages(first), _messages(second)
    assert sorted(m for m in once if not m[0].startswith("/echogen/")) == sorted(_messages(source))
    assert sorted(m for m in twice if not m[0].startswith("/echogen/")) == sorted(_messages(source))
    old_outputs = [m for m in once if m[0].startswith("/echogen/")]
    summary = json.loads(out.splitlines()[-1])
    assert summary["replaced"] == len(old_outputs) and f"replaced: {len(old_outputs)} messages" in out
    assert summary["frames"] == 6  # read from /image, not from the old /echogen/debug_image
    with Reader(second) as reader:
        topics = [c.topic for c in reader.connections]
        assert len(topics) == len(set(topics))  # one connection per topic
    _assert_definitions_complete(second)
    decoded_once, decoded_twice = _decoded(first), _decoded(second)
    for topic in ("/echogen/detections", "/echogen/imagined", "/echogen/goal_layout"):
        assert len(decoded_twice[topic]) == len(decoded_once[topic]) > 0, topic  # replaced, not doubled


def test_at_the_node_threshold_what_was_not_found_is_left_out_and_said(
    tiny_model_dir: Path, tmp_path: Path, capsys
) -> None:
    """At the node's default threshold (a probability, 0.5) a random model finds nothing: every detections
    message is empty, the status says what was not found and why, and the 'put' is not imagined."""
    source, target = tmp_path / "in", tmp_path / "out"
    _write_input(source, StoragePlugin.MCAP, corrupt=False)
    assert main(["bag", "--in", str(source), "--out", str(target), "--model", str(tiny_model_dir)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["imagined"] == 0
    decoded = _decoded(target)
    arrays = [m for _, m in decoded["/echogen/detections"]]
    assert len(arrays) == 5 and all(a.detections == [] for a in arrays)  # frames 1 to 5
    statuses = [m.data for _, m in decoded["/echogen/status"]]
    assert any(s.startswith("grounded 0/2") and "not found 'the cup': " in s and "not found 'the plate': " in s
               for s in statuses), statuses  # fmt: skip
    refused = "imagine 'put the cup above the plate': cannot find 'the cup' in the image: "
    assert any(s.startswith(refused) for s in statuses), statuses
    assert "/echogen/imagined" not in decoded


def test_another_namespace_keeps_old_outputs(tiny_model_dir: Path, tmp_path: Path) -> None:
    source, first, second = tmp_path / "in", tmp_path / "out1", tmp_path / "out2"
    _write_input(source, StoragePlugin.MCAP, corrupt=False)
    assert _run_bag(source, first, tiny_model_dir) == 0
    assert _run_bag(first, second, tiny_model_dir, "--namespace", "/offline") == 0
    assert sorted(m for m in _messages(second) if not m[0].startswith("/offline/")) == sorted(_messages(first))
    assert len(_decoded(second, "/offline/")["/offline/detections"]) == 5  # frames 1 to 5


def _truncate(path: Path) -> None:
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2)


def _bad_input(tmp_path: Path, kind: str) -> Path:
    """An input path that is no readable rosbag2."""
    if kind in ("truncated mcap", "truncated db3"):
        storage = StoragePlugin.MCAP if kind == "truncated mcap" else StoragePlugin.SQLITE3
        _write_input(tmp_path / "bag", storage, corrupt=False)
        (data,) = [p for p in (tmp_path / "bag").iterdir() if p.suffix in (".mcap", ".db3")]
        _truncate(data)
        return tmp_path / "bag"
    path = tmp_path / {"text file": "notes.txt", "ros1 bag": "old.bag", "folder": "photos", "bad yaml": "b"}[kind]
    if kind in ("folder", "bad yaml"):
        path.mkdir()
        (path / ("metadata.yaml" if kind == "bad yaml" else "a.jpg")).write_text("rosbag2_bagfile_information: [")
    else:
        path.write_text("not a bag\n")
    return path


@pytest.mark.parametrize("kind", ["text file", "ros1 bag", "folder", "bad yaml", "truncated mcap", "truncated db3"])
def test_bad_inputs_exit_2_with_one_line(tiny_model_dir: Path, tmp_path: Path, capsys, kind: str) -> None:
    source, target = _bad_input(tmp_path, kind), tmp_path / "out"
    assert _run_bag(source, target, tiny_model_dir) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("echogen: error: ") and str(source) in err, err
    assert not target.exists()


def test_type_without_any_definition_exits_2(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    _write_input(source, StoragePlugin.SQLITE3, corrupt=False)
    with sqlite3.connect(source / "in.db3") as db:  # a robot's own type, recorded where its package was installed
        db.execute("INSERT INTO topics VALUES (9, '/odd', 'my_robot_msgs/msg/Odd', 'cdr', '', 'RIHS01_')")
        db.execute("INSERT INTO messages (topic_id, timestamp, data) VALUES (9, ?, ?)", (START, b"\0\1\0\0"))
    meta = yaml.safe_load((source / "metadata.yaml").read_text())
    topic = {"name": "/odd", "type": "my_robot_msgs/msg/Odd", "serialization_format": "cdr",
             "offered_qos_profiles": "", "type_description_hash": "RIHS01_"}  # fmt: skip
    topics = meta["rosbag2_bagfile_information"]["topics_with_message_count"]
    topics.append({"topic_metadata": topic, "message_count": 1})
    (source / "metadata.yaml").write_text(yaml.safe_dump(meta))
    _as_written_by_older_rosbag2(source, 5)
    assert _run_bag(source, target, tiny_model_dir) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "/odd (my_robot_msgs/msg/Odd)" in err and "ros2 bag convert" in err, err
    assert not target.exists()


def _smash_overflow_pages(db3: Path) -> None:
    """Point the overflow chains in the second half of a fresh sqlite file (the image blobs) nowhere."""
    data = bytearray(db3.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for start in range(len(data) // 2 // page * page, len(data), page):
        if data[start] == 0:  # an overflow page: a 4-byte next-page number; b-tree pages begin with 2, 5, 10 or 13
            data[start : start + 4] = (2**31 - 1).to_bytes(4, "big")
    db3.write_bytes(bytes(data))


def test_damage_found_mid_bag_leaves_no_output(tiny_model, tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    _write_input(source, StoragePlugin.SQLITE3, corrupt=False)
    _smash_overflow_pages(source / "in.db3")
    read: list[int] = []
    with pytest.raises(BagError, match="cannot read input bag .* to the end"):
        process_bag(source, target, tiny_model, progress=lambda done, total: read.append(done))
    assert read and not target.exists()  # it failed part way: the partial output is gone
    assert _run_bag(source, target, tiny_model_dir) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("echogen: error: cannot read input bag") and "Traceback" not in err
    assert not target.exists()


def test_bag_errors_exit_2(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    source = tmp_path / "in"
    _write_input(source, StoragePlugin.MCAP)
    base = ["--model", str(tiny_model_dir)]
    assert main(["bag", "--in", str(tmp_path / "none"), "--out", str(tmp_path / "o1"), *base]) == 2
    assert main(["bag", "--in", str(source), "--out", str(source), *base]) == 2
    assert main(["bag", "--in", str(source), "--out", str(tmp_path / "o2"), "--image-topic", "/nope", *base]) == 2
    assert (
        main(["bag", "--in", str(source), "--out", str(tmp_path / "o3"), "--image-topic", "/instruction", *base]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("echogen: error:") == 4 and "does not exist" in err and "exists" in err and "not in the bag" in err
    assert np.all([not (tmp_path / f"o{i}").exists() for i in (1, 2, 3)])


def test_a_killed_run_neither_blocks_nor_outlives_the_rerun(tiny_model_dir: Path, tmp_path: Path) -> None:
    """SIGKILL mid-run once left an unreadable bag without footer at --out that blocked the rerun; now the
    output is written to a hidden sibling, so a killed run leaves only that, which the next run removes."""
    import subprocess
    import sys

    source, target = tmp_path / "in", tmp_path / "out"
    _write_input(source, StoragePlugin.MCAP)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / f".out.partial-{gone.stdout.strip()}"  # what `kill -9` during a run leaves
    leftover.mkdir()
    (leftover / "out_0.mcap").write_bytes(b"\x89MCAP0\r\n" + bytes(100))
    assert _run_bag(source, target, tiny_model_dir) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    with AnyReader([target]) as reader:
        assert reader.message_count > 0
