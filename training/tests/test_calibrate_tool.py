"""`echogen-train calibrate`: fits on val, scores on test, records both in the manifest, and the model then
reports calibrated probabilities; bad input is one line and exit code 2, with the model left as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from echogen_training import tools

from echogen_ros.model.echogen import EchoGen
from echogen_ros.world.dataset import world_sample


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return EchoGen.create("tiny", seed=0).save(tmp_path_factory.mktemp("models") / "tiny")


def test_calibrate_records_a_fit_on_val_scored_on_test(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    assert tools.main("calibrate", ["--model", str(model_dir), "--scenes", "10", "--test-scenes", "10"]) == 0
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()  # the process is as it was
    printed = json.loads(capsys.readouterr().out)
    manifest = json.loads((model_dir / "echogen.json").read_text())
    entry = manifest["calibration"]
    assert entry["fitted_on"]["split"] == "val" and entry["metrics"]["split"] == "test"
    assert entry["fitted_on"]["no_target"] > 0 and printed["weights"] == entry["weights"]
    assert 0 <= entry["metrics"]["ece"] <= 1 and "raw_score" in entry["metrics"]
    model = EchoGen.load(model_dir)  # the manifest's hashes still hold
    assert entry["fitted_on"]["second_look_below"] == model.second_look_below == 0.08  # it looks as it was fitted
    answer = model.find(world_sample(0, 0, "test").image(160, 120), "the cup", threshold=0.0)
    assert answer.calibrated and answer.confidence == answer.detections[0].score
    assert entry["fitted_on"]["weights"] == manifest["files"]["model.safetensors"]
    model.save(tmp_path / "trained_on")  # new weights (a training run's save): the calibration is not carried
    assert "calibration" not in json.loads((tmp_path / "trained_on" / "echogen.json").read_text())


def test_calibrate_can_also_fit_on_held_out_compositions(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    """--compositions N: the fit also reads the first N held-out scenes of seed 7 and is scored on the next N;
    the manifest says so. Fewer than 10 is refused."""
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    common = ["--model", str(model_dir), "--scenes", "10", "--test-scenes", "10"]
    assert tools.main("calibrate", [*common, "--compositions", "10"]) == 0
    capsys.readouterr()
    entry = json.loads((model_dir / "echogen.json").read_text())["calibration"]
    assert entry["fitted_on"]["compositions"]["split"] == "heldout"
    assert entry["fitted_on"]["compositions"]["seed"] == 7 and entry["fitted_on"]["compositions"]["answers"] > 0
    assert entry["metrics"]["compositions"]["scenes"] == [10, 19] and 0 <= entry["metrics"]["compositions"]["ece"] <= 1
    for few in ("5", "-3"):
        assert tools.main("calibrate", [*common, "--compositions", few]) == 2
        assert "--compositions" in capsys.readouterr().err


def test_calibrate_refuses_too_few_scenes_and_leaves_the_model(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    before = (model_dir / "echogen.json").read_bytes()
    assert tools.main("calibrate", ["--model", str(model_dir), "--scenes", "5"]) == 2
    assert "≥ 10" in capsys.readouterr().err
    assert (model_dir / "echogen.json").read_bytes() == before
    assert tools.main("calibrate", ["--model", str(tmp_path / "missing")]) == 2
