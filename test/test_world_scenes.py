"""Scenes: determinism, exact boxes inside the image, held-out compositions, vocabulary, speed-free checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from echogen_ros.world import catalog
from echogen_ros.world.dataset import export, world_sample
from echogen_ros.world.render import object_polygons, pixel_box
from echogen_ros.world.scene import SceneConfig


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_arguments_write_byte_identical_files(tmp_path: Path) -> None:
    export(tmp_path / "a", seed=11, count=5, split="val", width=320, height=240)
    export(tmp_path / "b", seed=11, count=5, split="val", width=320, height=240)
    export(tmp_path / "c", seed=12, count=5, split="val", width=320, height=240)
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "c")


def test_sample_depends_only_on_seed_split_and_index() -> None:
    a, b = world_sample(1, 9, "train"), world_sample(1, 9, "train")
    assert a.scene == b.scene and a.expressions == b.expressions and a.instructions == b.instructions
    assert np.array_equal(a.image(), b.image())
    assert world_sample(1, 9, "test").scene != a.scene  # splits are independent streams


def test_texts_are_the_same_at_every_resolution(tmp_path: Path) -> None:
    big = export(tmp_path / "big", seed=4, count=4, width=640, height=480)
    small = export(tmp_path / "small", seed=4, count=4, width=96, height=72)
    assert [r["sentences"] for r in big["refs"]] == [r["sentences"] for r in small["refs"]]
    assert big["captions"] == small["captions"]
    for a, b in zip(big["annotations"], small["annotations"]):
        assert np.allclose(np.array(a["bbox"]) * 0.15, b["bbox"], atol=1.0)


@pytest.mark.parametrize(("width", "height"), [(640, 480), (64, 64), (1280, 720), (33, 47)])
def test_rendered_pixels_span_exactly_the_box(width: int, height: int) -> None:
    for index in range(20):
        sample = world_sample(2, index, "train")
        for obj in sample.scene.objects:
            box = pixel_box(obj, width, height)
            x1, y1, x2, y2 = box
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
            mask = np.zeros((height, width), np.uint8)
            for _, polygon in object_polygons(obj, box):
                cv2.fillPoly(mask, [polygon], 255, lineType=cv2.LINE_8)
            ys, xs = np.nonzero(mask)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == box


def _nearest_colour(rgb: np.ndarray) -> str:
    """The catalogue colour of the same chromaticity (lighting scales brightness, not hue)."""
    chroma = rgb / rgb.sum()
    return min(
        catalog.COLOURS, key=lambda c: np.abs(chroma - np.divide(catalog.COLOURS[c], sum(catalog.COLOURS[c]))).sum()
    )


def test_objects_keep_their_colour_in_the_rendered_image() -> None:
    """The box centre region of a ball (a filled disc) is close to the ball's colour."""
    checked = 0
    for index in range(40):
        sample = world_sample(8, index, "train")
        image = sample.image().astype(int)
        for obj, (x1, y1, x2, y2) in zip(sample.scene.objects, sample.boxes()):
            if obj.category != "ball":
                continue
            cx, cy = (x1 + x2) // 2 + 3, (y1 + y2) // 2 + 3  # off the highlight
            patch = image[cy - 2 : cy + 3, cx - 2 : cx + 3].reshape(-1, 3).mean(0)
            assert _nearest_colour(patch) == obj.colour, (index, obj.colour, patch)
            checked += 1
    assert checked > 5


def test_scene_respects_object_counts_and_gaps() -> None:
    config = SceneConfig(min_objects=3, max_objects=5)
    for index in range(50):
        objects = world_sample(6, index, "val", config).scene.objects
        assert 3 <= len(objects) <= 5
        for i, a in enumerate(objects):
            for b in objects[i + 1 :]:
                apart = a.box[2] <= b.box[0] or b.box[2] <= a.box[0] or a.box[3] <= b.box[1] or b.box[3] <= a.box[1]
                assert apart


def test_heldout_compositions_never_in_train(world_annotations: dict) -> None:
    names = {c["id"]: c["name"] for c in world_annotations["categories"]}
    anns = {a["id"]: a for a in world_annotations["annotations"]}
    for ann in anns.values():
        assert (ann["attributes"]["colour"], names[ann["category_id"]]) not in catalog.HELDOUT_PAIRS
    for item in world_annotations["refs"] + world_annotations["instructions"]:
        target = anns[item.get("ann_id", item.get("target_ann_id"))]
        assert (item["relation"], names[target["category_id"]]) not in catalog.HELDOUT_RELATIONS


def test_heldout_split_always_uses_a_heldout_composition() -> None:
    for index in range(40):
        sample = world_sample(0, index, "heldout")
        objs = sample.scene.objects
        assert any((o.colour, o.category) in catalog.HELDOUT_PAIRS for o in objs)
        for expr in sample.expressions:
            involved = [objs[j] for j in (expr.target, *expr.anchors)]
            assert (
                any((o.colour, o.category) in catalog.HELDOUT_PAIRS for o in involved)
                or (expr.relation, objs[expr.target].category) in catalog.HELDOUT_RELATIONS
            )


def test_every_text_uses_the_vocabulary() -> None:
    vocab = set(catalog.vocabulary())
    for index in range(100):
        sample = world_sample(9, index, "train" if index % 2 else "heldout")
        texts = [sample.caption] + [e.text for e in sample.expressions] + [i.text for i in sample.instructions]
        for text in texts:
            words = text.replace(",", " ,").replace(".", " .").split()
            assert set(words) <= vocab, set(words) - vocab


def test_export_is_coco_and_refcoco_shaped(world_annotations: dict, world_dir: Path) -> None:
    data = world_annotations
    assert set(data) >= {"images", "annotations", "categories", "captions", "refs", "instructions"}
    image_ids = {im["id"] for im in data["images"]}
    for im in data["images"]:
        assert (world_dir / "images" / im["file_name"]).is_file()
        assert (im["width"], im["height"]) == (640, 480)
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        assert ann["image_id"] in image_ids and w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= 640 and y + h <= 480 and ann["area"] == w * h
    ann_ids = {a["id"] for a in data["annotations"]}
    assert {r["type"] for r in data["refs"]} == set(catalog.EXPRESSION_TYPES)
    for ref in data["refs"]:
        assert ref["ann_id"] in ann_ids and ref["sentences"][0]["sent"] and ref["split"] == "train"
    for ins in data["instructions"]:
        assert ins["target_ann_id"] in ann_ids and set(ins["anchor_ann_ids"]) <= ann_ids
    assert len(data["captions"]) == len(data["images"])
    png = cv2.imread(str(world_dir / "images" / data["images"][0]["file_name"]))
    assert png.shape == (480, 640, 3)
