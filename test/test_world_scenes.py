"""Scenes: determinism, exact boxes inside the image, held-out compositions, vocabulary, speed-free checks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from echogen_ros.world import catalog
from echogen_ros.world.dataset import export, has_target, world_sample
from echogen_ros.world.language import asked_category
from echogen_ros.world.render import drawn_box, object_polygons, pixel_box
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
        category = names[item["category_id"]] if "ann_id" in item else None  # a ref: its (asked) category
        category = category or names[anns[item["target_ann_id"]]["category_id"]]
        assert (item["relation"], category) not in catalog.HELDOUT_RELATIONS


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
    anns = {a["id"]: a for a in data["annotations"]}
    present = [r for r in data["refs"] if has_target(r)]
    assert {r["type"] for r in present} == set(catalog.EXPRESSION_TYPES)
    assert [r["ref_id"] for r in data["refs"]] == list(range(1, len(data["refs"]) + 1))
    assert data["refs"][: len(present)] == present  # those with no referent follow every other
    for ref in data["refs"]:
        assert ref["sentences"][0]["sent"] and ref["split"] == "train" and ref["sent_ids"] == [ref["ref_id"]]
        if ref["no_target"]:  # gRefCOCO's no-target ref: no annotation, the category it asks for
            asked = asked_category(ref["sentences"][0]["sent"])
            assert ref["ann_id"] == [] and ref["category_id"] == catalog.CATEGORY_IDS[asked]
        else:
            assert ref["no_target"] is False and anns[ref["ann_id"]]["category_id"] == ref["category_id"]
        assert set(ref["anchor_ann_ids"]) <= set(anns)
    ann_ids = set(anns)
    for ins in data["instructions"]:
        assert ins["target_ann_id"] in ann_ids and set(ins["anchor_ann_ids"]) <= ann_ids
    assert len(data["captions"]) == len(data["images"])
    png = cv2.imread(str(world_dir / "images" / data["images"][0]["file_name"]))
    assert png.shape == (480, 640, 3)


def _scene_rows(sample) -> str:
    objects = [(o.category, o.colour, o.size, o.box, o.shade) for o in sample.scene.objects]
    style = sample.scene.style
    texts = [(e.target, e.text, e.kind, e.relation, e.anchors) for e in sample.expressions + sample.absent]
    orders = [(i.text, i.action, i.target, i.relation, i.anchors) for i in sample.instructions]
    look = (style.table, style.lighting, style.noise, style.noise_offset, style.shadow)
    return repr((objects, look, sample.caption, texts, orders, sample.boxes(320, 240)))


# sha256 of the scenes, texts and boxes, and of 160×120 renders, of seeds 0, 3, 7 (train and heldout, 8 scenes
# each), taken before SceneConfig had scale_range and border_cut: their defaults draw exactly what was drawn
BEFORE = {
    "default": ("b72eff5d0926aca40f1daa0472f60d2de64dd725c56554f9f33c72863afce869",
                "2bd689f4c1fb74320c530b7a350a1eb52c0d1179d27da73a6d86b86d2feb649c"),
    "clutter": ("4db0fafb548afe913367f37ef2c36b9f9a914b5d769481b4d59cbb46f84fa255",
                "7bbb53f0ced4bf4760bc8b7d1ee0fa64db79e5239f9022806b34d7be0cd152a0"),
    "occlusion": ("88441ff505192f2efe682b7ce826b99405b7726cb8d478be511f9faa3facf6bc",
                  "99706b49ad63fe79551c18fd38b20494d27bd9a887b771cc480b580b0316d160"),
}  # fmt: skip
CONFIGS = {
    "default": SceneConfig(scale_range=(1, 1), border_cut=0.0),
    "clutter": SceneConfig(min_objects=6, max_objects=12),
    "occlusion": SceneConfig(occlusion=0.3),
}


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_default_object_sizes_draw_every_scene_as_before(name: str) -> None:
    data, pixels = hashlib.sha256(), hashlib.sha256()
    for seed in (0, 3, 7):
        for split in ("train", "heldout"):
            for index in range(8):
                sample = world_sample(seed, index, split, CONFIGS[name])
                data.update(_scene_rows(sample).encode())
                pixels.update(sample.image(160, 120).tobytes())
    assert (data.hexdigest(), pixels.hexdigest()) == BEFORE[name]


def test_export_refs_with_a_referent_are_as_before(tmp_path: Path) -> None:
    """Format 2 adds refs with no referent after the others and `no_target` to every ref, and later where things
    are in space (images' `camera`, annotations' `box3d`, extra fields); nothing else moves."""
    data = export(tmp_path / "w", seed=11, count=6, split="val", width=320, height=240)
    present = [{k: v for k, v in r.items() if k != "no_target"} for r in data["refs"] if has_target(r)]
    rest = {k: v for k, v in data.items() if k not in ("refs", "info")}
    rest |= {kind: [{k: v for k, v in item.items() if k not in ("camera", "box3d")} for item in data[kind]]
             for kind in ("images", "annotations")}  # fmt: skip
    assert hashlib.sha256(json.dumps(present).encode()).hexdigest() == (
        "653b67bc8d6edb83d50c0c8ee0dd6d8ea32ec45bfac2934f5f3d2117ac43d04f"
    )
    assert hashlib.sha256(json.dumps(rest).encode()).hexdigest() == (
        "b6d6a0f7449d67588228e049de86ac845c2abbcf7b05695646e4c2347f4c406e"
    )
    assert data["info"]["version"] == 2 and len(data["refs"]) > len(present)


@pytest.mark.parametrize(("width", "height"), [(640, 480), (64, 64), (1280, 720)])
def test_scaled_and_cut_objects_span_exactly_their_box(width: int, height: int) -> None:
    """Objects of any size, some cut by the left, right or bottom border: what is drawn of each inside the
    frame spans its (cut) pixel box."""
    config, cut = SceneConfig(scale_range=(0.5, 1.6), border_cut=0.4, max_objects=12), 0
    for index in range(40):
        for obj in world_sample(2, index, "train", config).scene.objects:
            mask = np.zeros((height, width), np.uint8)
            for _, polygon in object_polygons(obj, drawn_box(obj, width, height)):
                cv2.fillPoly(mask, [polygon], 255, lineType=cv2.LINE_8)
            ys, xs = np.nonzero(mask)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == pixel_box(obj, width, height)
            cut += obj.extent is not None
            if obj.extent is not None:
                assert obj.box[1] == obj.extent[1] > 0  # never the top border
    assert cut > 10


def test_scale_range_scales_objects_and_clutter_reaches_twelve() -> None:
    def widths(config: SceneConfig) -> list[float]:
        return [o.box[2] - o.box[0] for i in range(30) for o in world_sample(4, i, "test", config).scene.objects]

    small, large = widths(SceneConfig(scale_range=(0.5, 0.7))), widths(SceneConfig(scale_range=(1.3, 1.6)))
    assert max(small) < 0.7 * 1.45 * 1.08 * 104 + 1e-6 and min(large) > 1.3 * 0.92 * 34 - 1e-6
    assert np.median(large) > 2 * np.median(small)
    counts = [len(world_sample(4, i, "test", SceneConfig(min_objects=10, max_objects=12)).scene.objects)
              for i in range(20)]  # fmt: skip
    assert max(counts) == 12
    for bad in ({"scale_range": (0.1, 1.0)}, {"scale_range": (1.2, 1.1)}, {"border_cut": 0.5}):
        with pytest.raises(ValueError):
            SceneConfig(**bad)
