"""`echogen bag` end to end: a bag written here (world frames + instructions, plus one corrupt
message) → the output bag read back with rosbags."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer

from echogen_ros.cli import main
from echogen_ros.interfaces import typestore
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.messages import MessageTypes
from echogen_ros.world.dataset import world_sample

STORE = typestore("humble")
MSGS = MessageTypes.from_typestore(STORE)


def _write_input(path: Path, storage: StoragePlugin, compressed: bool = False) -> None:
    with Writer(path, version=8, storage_plugin=storage) as writer:
        kind = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        images = writer.add_connection("/camera/image", kind, typestore=STORE)
        texts = writer.add_connection("/instruction", "std_msgs/msg/String", typestore=STORE)
        for i in range(6):
            stamp = 1_000_000_000 * (i + 1)
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
            writer.write(images, stamp, raw[: len(raw) // 3] if i == 4 else raw)  # frame 4 is corrupt


@pytest.mark.parametrize(("storage", "compressed"), [(StoragePlugin.MCAP, False), (StoragePlugin.SQLITE3, True)])
def test_bag_end_to_end(tiny_model_dir: Path, tmp_path: Path, capsys, storage, compressed: bool) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    _write_input(source, storage, compressed)
    args = ["bag", "--in", str(source), "--out", str(target), "--model", str(tiny_model_dir), "--score-threshold", "0"]
    assert main(args) == 0
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
