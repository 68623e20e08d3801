"""The world's camera: its truth boxes project back onto the rendered pixels, its depth is exact to the render,
and the export carries both (camera per image, box3d per annotation, depth/ PNGs in millimetres)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from echogen_ros.domain.camera import Box3D, Pinhole
from echogen_ros.world import catalog
from echogen_ros.world.camera import CAMERA_TO_TABLE, box3d, camera_record, depth_image, height_of, pinhole
from echogen_ros.world.dataset import export, world_sample
from echogen_ros.world.render import drawn_box, object_polygons, pixel_box


def _project(k: np.ndarray, point_table: np.ndarray) -> tuple[float, float]:
    """A table-frame point → edge coordinates, written out by hand (the inverse of the code under test)."""
    x, y, z = np.linalg.inv(CAMERA_TO_TABLE)[:3] @ np.append(point_table, 1.0)
    return k[0, 0] * x / z + k[0, 2] + 0.5, k[1, 1] * y / z + k[1, 2] + 0.5


@pytest.mark.parametrize(("width", "height"), [(640, 480), (320, 240), (1280, 720)])
def test_truth_boxes_project_onto_the_rendered_boxes(width: int, height: int) -> None:
    """Every object's 3D box, its top face projected through K, lands on its pixel box (within rounding)."""
    k = pinhole(width, height).k
    for index in range(12):
        for obj in world_sample(3, index, "heldout").scene.objects:
            box = box3d(obj)
            c, s = np.asarray(box.center), np.asarray(box.size)
            assert c[2] == pytest.approx(s[2] / 2) and s[2] == pytest.approx(height_of(obj))  # on the table
            top = c[2] + s[2] / 2
            u1, v1 = _project(k, np.array([c[0] - s[0] / 2, c[1] + s[1] / 2, top]))  # table y up = image up
            u2, v2 = _project(k, np.array([c[0] + s[0] / 2, c[1] - s[1] / 2, top]))
            assert np.allclose((u1, v1, u2, v2), pixel_box(obj, width, height), atol=0.51 + 2 * (width < 640))


def test_a_cup_stands_taller_than_a_plate_and_sizes_scale_heights() -> None:
    assert catalog.CATEGORY_HEIGHTS["cup"] > catalog.CATEGORY_HEIGHTS["bowl"] > catalog.CATEGORY_HEIGHTS["plate"]
    objects = [o for i in range(30) for o in world_sample(1, i, "train").scene.objects if o.category == "cup"]
    small = [height_of(o) for o in objects if o.size == "small"]
    large = [height_of(o) for o in objects if o.size == "large"]
    assert min(large) > max(small) and max(small) < 0.1 < min(large)


@pytest.mark.parametrize(("width", "height"), [(640, 480), (96, 72)])
def test_depth_is_exact_to_the_render(width: int, height: int) -> None:
    """Each pixel is the table's depth unless an object's polygons cover it; then the depth of the top of the
    object drawn last there."""
    for index in range(10):
        scene = world_sample(5, index, "train").scene
        expected = np.full((height, width), catalog.CAMERA_HEIGHT_M, np.float32)
        for obj in scene.objects:
            mask = np.zeros((height, width), np.uint8)
            for _, polygon in object_polygons(obj, drawn_box(obj, width, height)):
                cv2.fillPoly(mask, [polygon], 1, lineType=cv2.LINE_8)
            expected[mask > 0] = catalog.CAMERA_HEIGHT_M - height_of(obj)
        depth = depth_image(scene, width, height)
        assert depth.dtype == np.float32 and np.array_equal(depth, expected)
        assert len(np.unique(depth)) == len({height_of(o) for o in scene.objects}) + 1  # every object is seen


def test_pinhole_back_projects_a_box_at_a_depth() -> None:
    camera = Pinhole.from_k(pinhole(640, 480).k.ravel(), 640, 480)
    box = camera.box_at_depth((320, 240, 384, 272), 0.7, 0.8, "optical")  # 64 × 32 px from the image centre
    assert box.center == pytest.approx((0.035, 0.0175, 0.75)) and box.size == pytest.approx((0.07, 0.035, 0.1))
    turned = box.transformed(CAMERA_TO_TABLE, "table")
    assert turned.center == pytest.approx((0.035, -0.0175, 0.05)) and turned.size == pytest.approx(box.size)
    assert Box3D((0.0, 0.0, 0.0), (1.0, 2.0, 3.0)).as_dict() == {"center": [0, 0, 0], "size": [1, 2, 3], "frame": ""}
    for bad in ([[0, 0, 1], [0, 1, 1], [0, 0, 1]], [[-1, 0, 1], [0, 1, 1], [0, 0, 1]]):
        with pytest.raises(ValueError):
            Pinhole.from_k(bad, 640, 480)


def test_export_writes_depth_camera_and_3d_boxes(tmp_path: Path) -> None:
    data = export(tmp_path / "w", seed=2, count=3, split="heldout", width=320, height=240)
    objects = [o for i in range(3) for o in world_sample(2, i, "heldout").scene.objects]
    for im in data["images"]:
        assert im["camera"] == camera_record(320, 240) and im["camera"]["depth_scale"] == 0.001
        depth = cv2.imread(str(tmp_path / "w" / "depth" / im["file_name"]), cv2.IMREAD_UNCHANGED)
        assert depth.dtype == np.uint16 and depth.shape == (240, 320)
        truth = world_sample(2, im["id"] - 1, "heldout").depth(320, 240)
        assert np.abs(depth * 0.001 - truth).max() <= 0.0005 + 1e-6  # millimetres, rounded
    for ann, obj in zip(data["annotations"], objects, strict=True):
        truth = box3d(obj)
        assert ann["box3d"]["center"] == pytest.approx(truth.center, abs=1e-6)
        assert ann["box3d"]["size"] == pytest.approx(truth.size, abs=1e-6) and set(ann["box3d"]) == {"center", "size"}
