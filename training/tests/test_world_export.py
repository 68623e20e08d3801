"""experiments.world_export: the experiments' reader of `echogen world` exports gives each scene's frame,
objects and referring expressions as annotations.json and images/ hold them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from experiments.world_export import read_scenes


def test_scenes_hold_what_the_export_holds(world_export: Path) -> None:
    data = json.loads((world_export / "annotations.json").read_text())
    scenes = read_scenes(world_export)
    assert [s.file_name for s in scenes] == [i["file_name"] for i in data["images"]]
    assert [s.file_name for s in read_scenes(world_export, limit=2)] == [i["file_name"] for i in data["images"][:2]]
    assert sum(len(s.objects) for s in scenes) == len(data["annotations"])
    present = [r for r in data["refs"] if not r["no_target"]]
    assert sum(len(s.expressions) for s in scenes) == sum(len(r["sentences"]) for r in present)
    absent = [(r["image_id"], r["sentences"][0]["sent"]) for r in data["refs"] if r["no_target"]]
    assert [(i["id"], text) for i, s in zip(data["images"], scenes) for text in s.absent] == absent and absent
    names = {c["id"]: c["name"] for c in data["categories"]}
    first = scenes[0]
    (info,) = [i for i in data["images"] if i["file_name"] == first.file_name]
    anns = [a for a in data["annotations"] if a["image_id"] == info["id"]]
    for obj, ann in zip(first.objects, anns, strict=True):
        x, y, w, h = ann["bbox"]
        assert obj.id == ann["id"] and obj.box == (x, y, x + w, y + h)
        assert obj.category == names[ann["category_id"]]
        assert obj.label == f"{ann['attributes']['colour']} {obj.category}"  # as layouts name objects
    for ref in (r for r in present if r["image_id"] == info["id"]):
        assert (ref["ann_id"], ref["sentences"][0]["sent"]) in first.expressions
        assert first.box(ref["ann_id"]) == next(o.box for o in first.objects if o.id == ref["ann_id"])
    bgr = cv2.imread(str(world_export / "images" / first.file_name))
    assert np.array_equal(first.image(), bgr[..., ::-1]) and first.image().shape == (info["height"], info["width"], 3)
    layout = first.layout(max_objects=2)
    assert (layout.width, layout.height) == (info["width"], info["height"])
    assert [(o.label, o.box) for o in layout.objects] == [(o.label, o.box) for o in first.objects[:2]]


def test_what_is_not_an_export_is_refused(world_export: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="echogen world"):
        read_scenes(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(world_export, broken)
    data = json.loads((broken / "annotations.json").read_text())
    del data["annotations"][0]["bbox"]
    (broken / "annotations.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="not an `echogen world` export"):
        read_scenes(broken)
    (broken / "images" / read_scenes(world_export)[0].file_name).unlink()
    data["annotations"][0]["bbox"] = [0, 0, 1, 1]
    (broken / "annotations.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="cannot read"):
        read_scenes(broken)[0].image()
