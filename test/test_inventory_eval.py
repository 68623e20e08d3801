"""`echogen eval --inventory`: which listed objects are right (hand-made scenes), the AP figures and controls, and
its bad combinations (exit code 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from echogen_ros.cli import main
from echogen_ros.evaluation.inventory import matches, scores
from echogen_ros.model import checkpoint, inventory, label_listing

TRUTH = [("red cup", (10, 10, 50, 50)), ("red cup", (100, 10, 140, 50)), ("blue plate", (10, 100, 110, 160))]


def test_a_listed_object_is_right_on_a_true_object_of_its_label_matched_once() -> None:
    listed = [
        ("red cup", (12, 10, 50, 52), 0.9),  # the first cup
        ("red cup", (11, 11, 49, 50), 0.8),  # the first cup again: taken by a better score
        ("blue cup", (100, 10, 140, 50), 0.9),  # the second cup's box, another colour
        ("blue plate", (10, 100, 60, 160), 0.7),  # half the plate: IoU 0.5
        ("red cup", (100, 30, 140, 70), 0.6),  # the second cup at IoU 1/3
    ]
    assert matches(TRUTH, listed) == [True, False, False, True, False]
    assert matches(TRUTH, [("red cup", (11, 11, 49, 50), 0.8), ("red cup", (12, 10, 50, 52), 0.9)]) == [False, True]


def test_scores_count_a_wrong_colour_wrong_and_its_place_right() -> None:
    right = [[(label, box, 0.9) for label, box in TRUTH]] * 2
    perfect = scores([TRUTH] * 2, right, threshold=0.5)
    assert perfect["ap50"] == pytest.approx(1.0) and perfect["precision"] == perfect["recall"] == 1.0
    assert perfect["scenes_exact"] == 1.0 and perfect["objects"] == perfect["listed"] == 6
    recoloured = [[("green " + label.split()[1], box, s) for label, box, s in scene] for scene in right]
    wrong = scores([TRUTH] * 2, recoloured, threshold=0.5)
    assert wrong["ap50"] == 0.0 and wrong["any_label_ap50"] == pytest.approx(1.0) and wrong["precision"] == 0.0
    unsure = scores([TRUTH] * 2, right, threshold=0.95)  # nothing reaches the threshold
    assert unsure["recall"] == 0.0 and unsure["scenes_exact"] == 0.0 and unsure["ap50"] == pytest.approx(1.0)


def test_eval_inventory_reports_the_listing_beside_its_controls(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    model = tmp_path / "capable"
    shutil.copytree(tiny_model_dir, model)
    checkpoint.write_manifest(model, inventory.with_capability(checkpoint.read_manifest(model)))
    argv = ["eval", "--inventory", "--world", "test", "--count", "2", "--model", str(model), "--json"]
    assert main([*argv, "--listing", "sequence"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scenes"]["count"] == 2 and report["inventory"]["listed"] == 0  # a random model lists nothing
    assert report["inventory"]["objects"] > 0 and report["inventory"]["ap50"] == 0.0
    assert report["inventory"]["method"] == "sequence" and report["inventory"]["auroc"] is None
    grounded = report["controls"]["grounded_true_labels"]
    assert grounded["listed"] == report["inventory"]["objects"] and "another_scene" in report["controls"]
    assert main(argv) == 0  # by label, the default: every label's best box, one label per object
    by_label = json.loads(capsys.readouterr().out)["inventory"]
    assert by_label["method"] == "labels" and 0 < by_label["listed"] <= 2 * len(label_listing.LABELS)
    assert 0.0 <= by_label["ece"] <= 1.0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "somewhere"], "--inventory draws scenes"),
        (["--world", "test", "--trust"], "one at a time"),
        (["--world", "test", "--threshold", "1.5"], "--threshold is a probability"),
        (["--world", "test", "--count", "1", "--model", "{plain}", "--listing", "sequence"], "not trained to list"),
    ],
)
def test_eval_inventory_bad_combinations_exit_2(argv: list[str], message: str, tiny_model_dir: Path, capsys) -> None:
    argv = [str(tiny_model_dir) if a == "{plain}" else a for a in argv]
    assert main(["eval", "--inventory", *argv]) == 2
    assert message in capsys.readouterr().err
