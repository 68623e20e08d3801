"""`echogen ground --depth D --camera CAMERA.json`: each detection's 3D box from an `echogen world` export's depth
and camera, in the table frame (the optical frame without camera_to_table); bad inputs are exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from echogen_ros.cli import main
from echogen_ros.world.dataset import export


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("space") / "w"
    data = export(root, seed=7, count=1, split="heldout")
    (root / "camera.json").write_text(json.dumps(data["images"][0]["camera"]))
    return root, data


def _ground(root: Path, expression: str, capsys, camera: str = "camera.json", depth: str = "depth/000001.png"):
    args = ["ground", "--image", str(root / "images" / "000001.png"), "--expr", expression, "--json",
            "--depth", str(root / depth), "--camera", str(root / camera)]  # fmt: skip
    code = main(args)
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else out.err)


def test_ground_adds_each_detections_3d_box_in_the_table_frame(scene, capsys) -> None:
    root, data = scene
    anns = {a["id"]: a for a in data["annotations"]}
    ref = next(r for r in data["refs"] if not r["no_target"] and r["type"] == "attribute")  # "the red cup"
    code, result = _ground(root, ref["sentences"][0]["sent"], capsys)
    assert code == 0 and result["found"], result
    box3d, truth = result["detections"][0]["box3d"], anns[ref["ann_id"]]["box3d"]
    assert box3d["frame"] == "table" and set(box3d) == {"center", "size", "frame"}
    assert np.linalg.norm(np.subtract(box3d["center"], truth["center"])) < 0.01  # the embedded model's box
    camera = json.loads((root / "camera.json").read_text())
    (root / "optical.json").write_text(json.dumps({"K": camera["K"]}))  # no camera_to_table: optical frame
    code, result = _ground(root, ref["sentences"][0]["sent"], capsys, camera="optical.json")
    optical = result["detections"][0]["box3d"]
    assert optical["frame"] == "camera_optical"
    assert optical["center"][2] == pytest.approx(0.8 - box3d["center"][2], abs=1e-3)  # along the axis, down


def test_ground_says_why_a_detection_has_no_3d_box(scene, capsys) -> None:
    root, data = scene
    cv2.imwrite(str(root / "blank.png"), np.zeros((480, 640), np.uint16))  # a depth camera that saw nothing
    ref = next(r for r in data["refs"] if not r["no_target"])
    code, result = _ground(root, ref["sentences"][0]["sent"], capsys, depth="blank.png")
    assert code == 0 and result["detections"][0]["box3d"] == {"reason": "0% of the box has depth in 0.1..10 m"}


@pytest.mark.parametrize(
    ("camera", "depth", "message"),
    [
        (None, "depth/000001.png", "--depth and --camera go together"),
        ('{"k": 1}', "depth/000001.png", "needs a camera object with K"),
        ('{"K": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "depth_scale": -1}', "depth/000001.png", "depth_scale must be"),
        ('{"K": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "camera_to_table": [1, 2]}', "depth/000001.png", "4x4"),
        ("{}", "images/000001.png", "one-channel 16-bit PNG"),
        ("{}", "missing.png", "does not exist"),
    ],
)
def test_bad_depth_or_camera_is_exit_2_with_one_line(scene, capsys, camera, depth, message) -> None:
    root, data = scene
    args = ["ground", "--image", str(root / "images" / "000001.png"), "--expr", "the cup", "--depth", str(root / depth)]
    if camera is not None:
        path = root / "bad.json"
        path.write_text(camera if camera != "{}" else json.dumps(data["images"][0]["camera"]))
        args += ["--camera", str(path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
