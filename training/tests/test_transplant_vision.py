"""training/scripts/transplant_vision.py: the donor's encoder replaces the model's, the language model is
kept, and the fitted aligner brings the new features closer to the old ones than the donor's own aligner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from echogen_ros.model import generation
from echogen_ros.model.echogen import EchoGen


def _features(model: EchoGen, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return generation.image_features(model.model, pixels).float()


def test_transplant_swaps_the_encoder_keeps_the_language_model_and_fits_the_aligner(
    capsys, script, tmp_path: Path
) -> None:
    transplant = script("transplant_vision")
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    donor_dir = EchoGen.create("tiny", seed=1).save(tmp_path / "donor")
    args = [str(model_dir), str(donor_dir), "--out", str(tmp_path / "out"), "--steps", "60", "--batch", "4"]
    assert transplant.main([*args, "--lr", "3e-3"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["relative_error_last"] < record["relative_error_first"]
    model, donor, out = EchoGen.load(model_dir), EchoGen.load(donor_dir), EchoGen.load(tmp_path / "out")
    for name, weight in out.model.model.vision_model.state_dict().items():
        assert torch.equal(weight, donor.model.model.vision_model.state_dict()[name])
    for name, weight in out.model.model.language_model.state_dict().items():
        assert torch.equal(weight, model.model.model.language_model.state_dict()[name])
    assert out.manifest["training"]["vision_transplant"]["donor"] == str(donor_dir)
    assert out.manifest["metrics"] == {}  # the model's old figures do not describe the new encoder
    frames = next(transplant.frames(model, seed=99, batch=4))  # frames the fit never saw
    old, raw, fitted = _features(model, frames), _features(donor, frames), _features(out, frames)
    assert (fitted - old).pow(2).mean() < 0.5 * (raw - old).pow(2).mean()


def test_an_encoder_of_another_input_size_is_refused(script, tmp_path: Path) -> None:
    transplant = script("transplant_vision")
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    donor_dir = EchoGen.create("tabletop", seed=0).save(tmp_path / "donor")
    with pytest.raises(ValueError, match="vision input size"):
        transplant.transplant(EchoGen.load(model_dir), EchoGen.load(donor_dir), steps=1, batch=1, lr=1e-3)
    assert transplant.main([str(model_dir), str(donor_dir), "--out", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad", [["--steps", "-1"], ["--batch", "0"], ["--lr", "0"], ["--out", "SAME"]])
def test_bad_arguments_exit_2_and_write_nothing(script, tmp_path: Path, bad: list[str]) -> None:
    transplant = script("transplant_vision")
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    before = sorted(p.name for p in model_dir.iterdir())
    bad = [str(model_dir) if b == "SAME" else b for b in bad]
    args = [str(model_dir), str(model_dir), "--out", str(tmp_path / "out"), *bad]
    assert transplant.main(args) == 2
    assert not (tmp_path / "out").exists() and sorted(p.name for p in model_dir.iterdir()) == before
