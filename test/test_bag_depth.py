"""`echogen bag` in space (issue 36): a bag as a depth camera records it (colour, then its registered depth a
few ms later, CameraInfo, /tf_static) gives detections_3d in the target frame near the world's truth with the
embedded model, each frame paired with the depth recorded after it, and for a put-command a goal_pose where the
relation holds in 3D; without depth the same bag stays 2D."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer

from echogen_ros.bag import process_bag
from echogen_ros.cli import main
from echogen_ros.domain.camera import relation_in_space
from echogen_ros.domain.relations import Truth
from echogen_ros.interfaces import typestore
from echogen_ros.runtime.core import RuntimeConfig
from echogen_ros.runtime.messages import TYPES, MessageTypes
from echogen_ros.runtime.sim_camera import SimCamera
from echogen_ros.world.camera import VIEW_EXTENT_M, box3d

STORE = typestore("humble")
MSGS = MessageTypes.from_typestore(STORE)
START = 1_717_000_000 * 10**9
COLOUR, DEPTH = "/camera/color/image_raw", "/camera/aligned_depth_to_color/image_raw"


def _write(path: Path, frames: int = 2, with_depth: bool = True, scene: int = 0) -> SimCamera:
    """Frames of test scene `scene` (seed 0) one second apart, each frame's depth (16UC1) logged 5 ms after it."""
    camera = SimCamera(MSGS, seed=0, split="test", frames_per_scene=1000)
    camera.count = scene * camera.frames_per_scene
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        topics = {
            name: writer.add_connection(topic, TYPES[name], typestore=STORE)
            for name, topic in (
                ("Image", COLOUR),
                ("CameraInfo", "/camera/color/camera_info"),
                ("TFMessage", "/tf_static"),
            )
        }
        depth = writer.add_connection(DEPTH, TYPES["Image"], typestore=STORE) if with_depth else None

        def put(connection, message, name: str, at: int) -> None:
            writer.write(connection, at, STORE.serialize_cdr(message, TYPES[name]))

        put(topics["TFMessage"], camera.camera_to_table(START / 1e9), "TFMessage", START)
        for i in range(frames):
            at = START + 10**9 * (i + 1)
            image, info, _ = camera.next(at / 1e9)
            put(topics["Image"], image, "Image", at)
            put(topics["CameraInfo"], info, "CameraInfo", at + 1_000_000)
            if with_depth:
                put(depth, camera.depth(image.header, "16UC1"), "Image", at + 5_000_000)
    return camera


def _read(bag: Path, topic: str) -> list:
    with AnyReader([bag]) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        return [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections=connections)]


@pytest.fixture(scope="module")
def model():
    from echogen_ros.model.echogen import EchoGen

    return EchoGen.load()


def test_a_depth_bag_gives_3d_detections_near_the_truth(tmp_path: Path, model) -> None:
    camera = _write(tmp_path / "in")
    sample = camera.scene(0)[0]
    truth = box3d(next(o for o, label in zip(sample.scene.objects, sample.labels()) if label == "white cup"))
    config = RuntimeConfig(every_frames=1, every_seconds=0.0).changed(target_frame="table")
    summary = process_bag(tmp_path / "in", tmp_path / "out", model, instruction="find the white cup", config=config)
    assert summary.frames == summary.groundings == 2 and summary.skipped == []
    located = _read(tmp_path / "out", "/echogen/detections_3d")
    frames = _read(tmp_path / "out", COLOUR)
    assert [m.header.stamp for m in located] == [f.header.stamp for f in frames]  # each frame's own stamp
    for array in located:
        assert array.header.frame_id == "table" and len(array.detections) == 1
        c = array.detections[0].bbox.center.position
        assert np.linalg.norm(np.subtract([c.x, c.y, c.z], truth.center)) < 0.03
    status = [m.data for m in _read(tmp_path / "out", "/echogen/status")]
    assert not any("2D only" in s for s in status), status


def test_a_put_command_in_a_depth_bag_gives_a_goal_pose_where_the_relation_holds(tmp_path: Path, model) -> None:
    camera = _write(tmp_path / "in", frames=1, scene=2)  # test scene 2: one cup, one plate
    sample = camera.scene(2)[0]
    put = "put the cup right of the plate"
    config = RuntimeConfig(every_frames=1, every_seconds=0.0).changed(target_frame="table")
    process_bag(tmp_path / "in", tmp_path / "out", model, instruction=put, config=config)
    (frame,), (located,) = _read(tmp_path / "out", COLOUR), _read(tmp_path / "out", "/echogen/detections_3d")
    poses = _read(tmp_path / "out", "/echogen/goal_pose")
    status = [m.data for m in _read(tmp_path / "out", "/echogen/status")]
    assert len(poses) == 1 and sorted(d.id for d in located.detections) == ["anchor_0", "target"], status
    pose = poses[0]
    assert (pose.header.frame_id, pose.header.stamp) == ("table", frame.header.stamp)
    labels = [o.category for o in sample.scene.objects]
    cup, plate = (box3d(sample.scene.objects[labels.index(name)]) for name in ("cup", "plate"))
    p = pose.pose.position
    assert p.z == pytest.approx(0.0, abs=0.002)  # on the table plane
    moved = cup.standing_at((p.x, p.y, p.z))
    assert moved.top_view()[0] > plate.top_view()[2]  # wholly right of the plate, in metres
    # not clearly false: the planner keeps the image's clear band (5.8 px of band overlap), which the model's
    # cup box and the tall cup's perspective leave at 0.97 of it on the table (unclear) here
    assert relation_in_space("right of", moved, [plate], VIEW_EXTENT_M) != Truth.FALSE
    assert relation_in_space("right of", cup, [plate], VIEW_EXTENT_M) == Truth.FALSE  # control: before the move
    assert any("3D in 'table'" in s for s in status), status


def test_without_depth_the_bag_stays_2d_and_bad_options_are_one_line(tmp_path: Path, model, capsys) -> None:
    _write(tmp_path / "in", frames=1, with_depth=False)
    config = RuntimeConfig(every_frames=1, every_seconds=0.0).changed(target_frame="table")
    summary = process_bag(tmp_path / "in", tmp_path / "out", model, instruction="find the white cup", config=config)
    assert summary.groundings == 1 and len(_read(tmp_path / "out", "/echogen/detections")[0].detections) == 1
    assert _read(tmp_path / "out", "/echogen/detections_3d") == []
    _write(tmp_path / "deep", frames=1)
    with pytest.raises(ValueError, match="is the image topic"):
        process_bag(tmp_path / "deep", tmp_path / "out2", model, image_topic=COLOUR, depth_topic=COLOUR)
    assert main(["bag", "--in", str(tmp_path / "deep"), "--out", str(tmp_path / "o3"), "--target-frame", "/t"]) == 2
    assert "no leading '/'" in capsys.readouterr().err
