"""`EchoGen.parse_scene`: the trained one-pass listing ("sequence") refused by a model not trained for it, its
JSON, its threshold, and the inventory calibration (fitted, stored in the manifest, read back, dropped with new
weights, refused when foreign); the listing by label (the default) on any model. The embedded model's listing
against the truth: test_default_model.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from echogen_ros.model import checkpoint, inventory, label_listing
from echogen_ros.model.confidence import Calibration, Signals
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.inventory import InventoryCalibration, ObjectSignals
from echogen_ros.model.layout import Detection, box_iou
from echogen_ros.world.dataset import world_sample

FRAME = world_sample(0, 0, "test").image(160, 120)


def capable_dir(tiny_model_dir: Path, to: Path, calibration: dict | None = None) -> Path:
    """A copy of the tiny model whose manifest says it was trained to list scenes (and holds `calibration`)."""
    shutil.copytree(tiny_model_dir, to)
    manifest = inventory.with_capability(checkpoint.read_manifest(to))
    if calibration is not None:
        manifest[inventory.MANIFEST_KEY] = calibration
    checkpoint.write_manifest(to, manifest)
    return to


def test_a_model_not_trained_for_it_refuses_to_list_a_scene_in_one_pass(tiny_model: EchoGen) -> None:
    with pytest.raises(inventory.InventoryUnsupported, match="not trained to list a scene"):
        tiny_model.parse_scene(FRAME, method="sequence")
    with pytest.raises(ValueError, match="method must be one of labels, sequence"):
        tiny_model.parse_scene(FRAME, method="guess")


def test_any_model_lists_a_scene_by_label_one_label_per_object(tiny_model: EchoGen) -> None:
    listing = tiny_model.parse_scene(FRAME)
    assert not listing.calibrated and not listing.out_of_domain
    assert listing.objects  # a random model's boxes, every label's best, raw scores
    labels = [d.label for d in listing.objects]
    assert len(set(labels)) == len(labels) and set(labels) <= set(label_listing.LABELS)
    boxes = [d.box for d in listing.objects]
    assert all(box_iou(a, b) < label_listing.OVERLAP for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert [(b[1], b[0]) for b in boxes] == sorted((b[1], b[0]) for b in boxes)  # top to bottom, left to right
    best = max(d.score for d in listing.objects)
    above = tiny_model.parse_scene(FRAME, threshold=best)
    assert [d.label for d in above.objects] == [d.label for d in listing.objects if d.score >= best]
    nothing = tiny_model.parse_scene(FRAME, threshold=1.0)
    assert nothing.objects == () and nothing.reason == "no object reaches the threshold 1"
    with pytest.raises(ValueError, match="threshold must be a probability"):
        tiny_model.parse_scene(FRAME, threshold=-0.1)


def test_a_listing_says_why_it_lists_nothing(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = EchoGen.load(capable_dir(tiny_model_dir, tmp_path / "capable"))
    listing = model.parse_scene(FRAME, method="sequence")  # a random model ends at once
    latency = round(listing.latency_ms, 2)
    assert listing.to_json() == {"objects": [], "out_of_domain": False, "calibrated": False,
                                 "reason": "the model lists nothing", "latency_ms": latency}  # fmt: skip
    with pytest.raises(ValueError, match="threshold must be a probability"):
        model.parse_scene(FRAME, threshold=1.5, method="sequence")


def test_the_calibration_turns_signals_into_the_probability_of_a_right_object() -> None:
    sure, unsure = ObjectSignals(0.99, 0.95, 0.9), ObjectSignals(0.3, 0.4, 0.2)
    signals = [sure] * 40 + [unsure] * 40 + [sure] * 2 + [unsure] * 2
    right = [True] * 40 + [False] * 40 + [False] * 2 + [True] * 2
    fitted = InventoryCalibration.fit(signals, right, fitted_on={"split": "val"})
    assert fitted.probability(sure) == pytest.approx(40 / 42, abs=0.02)
    assert fitted.probability(unsure) == pytest.approx(2 / 42, abs=0.02)
    assert InventoryCalibration.from_manifest(fitted.to_manifest()) == fitted
    grounding = Calibration.fit([Signals(0.9, 0.5, 0.1, 0.2), Signals(0.2, 0.1, 0.8, 0.2)] * 5, [True, False] * 5)
    with pytest.raises(ValueError, match="calibrate-inventory"):  # a grounding calibration is not the inventory's
        InventoryCalibration.from_manifest(grounding.to_manifest())


def test_a_calibrated_model_reports_it_and_new_weights_drop_it(tiny_model_dir: Path, tmp_path: Path) -> None:
    entry = InventoryCalibration((1.0, 1.0, 1.0, 0.0), {"split": "val"}).to_manifest()
    model = EchoGen.load(capable_dir(tiny_model_dir, tmp_path / "calibrated", entry))
    assert model.inventory_calibration is not None and model.parse_scene(FRAME, method="sequence").calibrated
    model.save(tmp_path / "trained_on")
    saved = json.loads((tmp_path / "trained_on" / checkpoint.MANIFEST).read_text())
    assert inventory.MANIFEST_KEY not in saved and saved["capabilities"] == ["inventory"]


def test_one_label_per_object_keeps_the_better_scored_of_overlapping_boxes() -> None:
    cup = Detection((0, 0, 10, 10), 0.9, "red cup")
    recoloured = Detection((1, 0, 10, 10), 0.6, "orange cup")  # the same object at IoU 0.9, another colour
    beside = Detection((5, 0, 15, 10), 0.5, "red ball")  # IoU 1/3 with the cup: another object
    kept = label_listing.one_label_per_object([recoloured, beside, cup])
    assert [d.label for d in kept] == ["red cup", "red ball"]
    assert label_listing.one_label_per_object([recoloured, cup], overlap=0.95) == [cup, recoloured]
