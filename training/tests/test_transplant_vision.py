"""`echogen-train transplant-vision` (echogen_training.tools.transplant_vision): the donor's encoder replaces the
model's, the language model is kept, and the fitted aligner brings the new features closer to the old ones than
the donor's own aligner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from echogen_training.cli import main as echogen_train
from echogen_training.tools import transplant_vision
from transformers import JanusForConditionalGeneration

from echogen_ros.model import generation, vision_stem
from echogen_ros.model.echogen import EchoGen


def _tiny_64(path: Path, patch: int = 16) -> Path:
    """The tiny preset with a 64 px encoder input (through 16 px patches: the same 4 × 4 image tokens)."""
    donor = EchoGen.create("tiny", seed=1)
    vision = donor.model.config.vision_config
    vision.image_size, vision.patch_size = 64, patch
    wider = JanusForConditionalGeneration(donor.model.config)
    return EchoGen(wider, donor.tokenizer, {**donor.manifest, "vision_size": 64}).save(path)


def run(args: list[str]) -> int:
    return echogen_train(["transplant-vision", *args])


def _features(model: EchoGen, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return generation.image_features(model.model, pixels).float()


def test_transplant_swaps_the_encoder_keeps_the_language_model_and_fits_the_aligner(capsys, tmp_path: Path) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    donor_dir = EchoGen.create("tiny", seed=1).save(tmp_path / "donor")
    args = [str(model_dir), str(donor_dir), "--out", str(tmp_path / "out"), "--steps", "60", "--batch", "4"]
    assert run([*args, "--lr", "3e-3"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["relative_error_last"] < record["relative_error_first"]
    model, donor, out = EchoGen.load(model_dir), EchoGen.load(donor_dir), EchoGen.load(tmp_path / "out")
    for name, weight in out.model.model.vision_model.state_dict().items():
        assert torch.equal(weight, donor.model.model.vision_model.state_dict()[name])
    for name, weight in out.model.model.language_model.state_dict().items():
        assert torch.equal(weight, model.model.model.language_model.state_dict()[name])
    recorded = out.manifest["training"]["vision_transplant"]
    assert recorded["donor"] == str(donor_dir.resolve()) and recorded["model"] == str(model_dir.resolve())
    assert recorded["donor_files"] == donor.manifest["files"] and recorded["model_files"] == model.manifest["files"]
    assert json.loads((tmp_path / "out" / "vision_transplant.json").read_text()) == recorded
    assert out.manifest["metrics"] == {}  # the model's old figures do not describe the new encoder
    (frames,) = next(transplant_vision.frames((model.vision_size,), seed=99, batch=4))  # frames the fit never saw
    old, raw, fitted = _features(model, frames), _features(donor, frames), _features(out, frames)
    assert (fitted - old).pow(2).mean() < 0.5 * (raw - old).pow(2).mean()


def test_a_donor_of_another_input_size_brings_its_size(tmp_path: Path) -> None:
    """tiny (32 px) under a model of the same LM but 64 px input (tiny-64: as tabletop-256 is to tabletop)."""
    model = EchoGen.create("tiny", seed=0)
    donor_dir = _tiny_64(tmp_path / "donor")
    out = tmp_path / "out"
    args = [str(model.save(tmp_path / "model")), str(donor_dir), "--out", str(out), "--steps", "5", "--batch", "2"]
    assert run(args) == 0
    loaded = EchoGen.load(out)
    assert loaded.vision_size == 64 and loaded.manifest["vision_size"] == 64
    assert loaded.model.config.vision_config.image_size == 64
    image = np.zeros((48, 80, 3), dtype=np.uint8)
    assert len(loaded.ground(image, "the red cup")) == 1  # the model runs at its new input size


@pytest.mark.parametrize("patch", [8, 32])  # 64 px through 8 px patches: 64 tokens; through 32 px: 4
def test_a_donor_whose_encoder_gives_other_image_tokens_is_refused(capsys, tmp_path: Path, patch: int) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")  # 16 image tokens
    donor_dir = _tiny_64(tmp_path / "donor", patch=patch)
    with pytest.raises(ValueError, match="encoder's image tokens"):
        transplant_vision.transplant(EchoGen.load(model_dir), EchoGen.load(donor_dir), steps=1, batch=1, lr=1e-3)
    assert run([str(model_dir), str(donor_dir), "--out", str(tmp_path / "out")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("echogen-train: error: ") and "encoder's image tokens" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "bad",
    [["--steps", "0"], ["--batch", "0"], ["--lr", "0"], ["--lr", "nan"], ["--steps", "x"], ["--out", "MODEL"],
     ["--out", "DONOR"], ["--out", "MODEL", "--overwrite"], ["--nonsense"]],
)  # fmt: skip
def test_bad_arguments_exit_2_and_write_nothing(capsys, tmp_path: Path, bad: list[str]) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    donor_dir = EchoGen.create("tiny", seed=1).save(tmp_path / "donor")
    before = {d: sorted((p.name, p.stat().st_mtime_ns) for p in d.iterdir()) for d in (model_dir, donor_dir)}
    bad = [{"MODEL": str(model_dir), "DONOR": str(donor_dir)}.get(b, b) for b in bad]
    args = [str(model_dir), str(donor_dir), "--out", str(tmp_path / "out"), *bad]
    assert run(args) == 2
    (line,) = capsys.readouterr().err.splitlines()  # one line, no usage, no traceback
    assert line.startswith("echogen-train: error: ")
    assert not (tmp_path / "out").exists()
    assert before == {d: sorted((p.name, p.stat().st_mtime_ns) for p in d.iterdir()) for d in (model_dir, donor_dir)}


def test_a_donor_with_a_stem_brings_it_and_one_without_takes_it_away(tmp_path: Path) -> None:
    donor = EchoGen.create("tiny", seed=1)
    vision_stem.enable(donor.model)
    with torch.no_grad():
        vision_stem.stem_of(donor.model).net[-1].weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(2))
    donor_dir = donor.save(tmp_path / "donor")
    out = tmp_path / "out"
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    assert run([str(model_dir), str(donor_dir), "--out", str(out), "--steps", "2", "--batch", "2"]) == 0
    loaded = EchoGen.load(out)
    assert loaded.model.config.vision_stem == donor.model.config.vision_stem
    for name, weight in vision_stem.stem_of(loaded.model).state_dict().items():
        assert torch.equal(weight, vision_stem.stem_of(donor.model).state_dict()[name])
    back = tmp_path / "back"  # the stem model's encoder replaced by a plain one: no stem left in config or weights
    assert run([str(out), str(model_dir), "--out", str(back), "--steps", "2", "--batch", "2"]) == 0
    plain = EchoGen.load(back)
    assert vision_stem.stem_of(plain.model) is None and not getattr(plain.model.config, "vision_stem", None)
