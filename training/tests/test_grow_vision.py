"""`echogen-train grow-vision` (echogen_training.tools.grow_vision): the encoder reads factor × the pixels on the
same patch grid and, on a frame's factor × factor block averages, computes what it computed before; layers added
to it start as the identity and can learn; everything else is kept, and a bad factor, depth or output is
refused; a convolutional stem beside the patch embedding starts at zero, is saved, loaded and trained."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from echogen_training.cli import main as echogen_train
from echogen_training.tools import grow_vision

from echogen_ros.model import generation, vision_stem
from echogen_ros.model.echogen import EchoGen


def run(args: list[str]) -> int:
    return echogen_train(["grow-vision", *args])


def _features(model: EchoGen, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return generation.image_features(model.model, pixels).float()


@pytest.mark.parametrize("factor", [2, 3])
def test_the_grown_encoder_reads_block_averages_as_the_old_one_read_the_frame(capsys, tmp_path: Path, factor) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    assert run([str(model_dir), "--out", str(tmp_path / "out"), "--factor", str(factor)]) == 0
    record = json.loads(capsys.readouterr().out)
    model, out = EchoGen.load(model_dir), EchoGen.load(tmp_path / "out")
    size = model.vision_size
    assert out.vision_size == size * factor and out.manifest["vision_size"] == size * factor
    assert out.model.config.vision_config.image_size == size * factor
    assert record["vision_size"] == [size, size * factor] and record["model"] == str(model_dir.resolve())
    assert out.manifest["training"]["vision_growth"] == record
    big = torch.rand(2, 3, size * factor, size * factor, generator=torch.Generator().manual_seed(3)) * 2 - 1
    small = F.avg_pool2d(big, factor)  # each old pixel: the mean of the factor × factor block it stands for
    before, after = _features(model, small), _features(out, big)
    assert (after - before).norm() <= 1e-4 * before.norm()
    flipped = _features(out, big.flip(-1))  # the features do read the pixels: another frame, other features
    assert (flipped - after).norm() >= 0.05 * after.norm()
    for part in ("language_model", "aligner"):
        kept = getattr(out.model.model, part).state_dict()
        for name, weight in getattr(model.model.model, part).state_dict().items():
            assert torch.equal(kept[name], weight), f"{part}.{name} changed"
    image = np.zeros((48, 80, 3), dtype=np.uint8)
    assert len(out.ground(image, "the red cup")) == 1  # the model runs at its new input size


def test_the_grown_model_carries_no_calibration_or_domain_check_of_the_old_inputs(tmp_path: Path) -> None:
    model = EchoGen.create("tiny", seed=0)
    model.manifest = {**model.manifest, "domain": {"threshold": 1.0}}
    grow_vision.grow(model, 2)
    out = EchoGen.load(model.save(tmp_path / "out"))
    assert "domain" not in out.manifest and "calibration" not in out.manifest
    assert out.calibration is None and out.domain is None


def test_added_layers_start_as_the_identity_and_can_learn(capsys, tmp_path: Path) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    assert run([str(model_dir), "--out", str(tmp_path / "out"), "--factor", "1", "--layers", "2"]) == 0
    record = json.loads(capsys.readouterr().out)
    model, out = EchoGen.load(model_dir), EchoGen.load(tmp_path / "out")
    depth = model.model.config.vision_config.num_hidden_layers
    assert record["layers"] == [depth, depth + 2] and record["factor"] == 1
    assert out.model.config.vision_config.num_hidden_layers == depth + 2 and out.vision_size == model.vision_size
    layers = out.model.model.vision_model.encoder.layers
    assert len(layers) == depth + 2
    pixels = torch.rand(2, 3, model.vision_size, model.vision_size, generator=torch.Generator().manual_seed(4)) * 2 - 1
    before, after = _features(model, pixels), _features(out, pixels)
    assert (after - before).norm() <= 1e-5 * before.norm()  # the new layers add nothing yet
    new = layers[depth]
    assert torch.equal(new.mlp.fc1.weight, layers[depth - 1].mlp.fc1.weight)  # the last layer's reading, copied
    out.model.train()
    generation.image_features(out.model, pixels).float().square().mean().backward()
    assert new.mlp.fc2.weight.grad.abs().sum() > 0 and new.self_attn.projection_layer.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--factor", "5"], "--factor must be 1 to 4"),
        (["--factor", "0"], "--factor must be 1 to 4"),
        (["--factor", "1"], "nothing to grow"),
        (["--factor", "1", "--layers", "9"], "--layers must be 0 to 8"),
        (["--layers", "-1"], "--layers must be 0 to 8"),
    ],
)
def test_a_factor_or_depth_out_of_range_is_one_line_and_exit_2(capsys, tmp_path: Path, args, said) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    assert run([str(model_dir), "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert said in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_the_model_itself_is_refused_as_the_output(capsys, tmp_path: Path) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    files = sorted(p.name for p in model_dir.iterdir())
    assert run([str(model_dir), "--out", str(model_dir)]) == 2
    assert "one of the input models" in capsys.readouterr().err
    assert sorted(p.name for p in model_dir.iterdir()) == files


def test_a_stem_starts_at_zero_is_saved_and_loaded_and_learns(capsys, tmp_path: Path) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    assert run([str(model_dir), "--out", str(tmp_path / "out"), "--factor", "1", "--stem"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["stem"] == {"channels": vision_stem.default_channels(8)} == {"channels": [32, 64]}
    model, out = EchoGen.load(model_dir), EchoGen.load(tmp_path / "out")
    stem = vision_stem.stem_of(out.model)
    assert stem is not None and vision_stem.stem_of(model.model) is None
    assert out.model.config.vision_stem == record["stem"]
    size = model.vision_size
    pixels = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(5)) * 2 - 1
    assert torch.equal(_features(out, pixels), _features(model, pixels))  # zero until trained
    out.model.train()
    generation.image_features(out.model, pixels).float().square().mean().backward()
    last = stem.net[-1]
    assert last.weight.grad.abs().sum() > 0  # the grounding loss reaches the stem through the hook
    with torch.no_grad():  # a trained stem changes the features, and the change survives save and load
        last.weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(6))
    moved = _features(out, pixels)
    assert (moved - _features(model, pixels)).norm() >= 0.01 * moved.norm()
    again = EchoGen.load(out.save(tmp_path / "again"))
    assert torch.equal(_features(again, pixels), moved)
    copied = copy.deepcopy(again.model)  # a copied encoder reads its own stem, hooked once
    with torch.no_grad():
        vision_stem.stem_of(copied).net[-1].weight.zero_()
    assert torch.equal(generation.image_features(copied, pixels).float(), _features(model, pixels))
    assert torch.equal(_features(again, pixels), moved)
    assert len(vision_stem.stem_of(again.model).net) == 5  # 8 px patch: two halvings with GELU, then the last


def test_a_stem_is_refused_twice_and_before_widening(tmp_path: Path) -> None:
    model = EchoGen.create("tiny", seed=0)
    grow_vision.grow(model, 1, stem=True)
    with pytest.raises(ValueError, match="has a vision stem already"):
        grow_vision.grow(model, 1, stem=True)
    with pytest.raises(ValueError, match="widen a model before giving it one"):
        grow_vision.grow(model, 2)
    grown = EchoGen.create("tiny", seed=0)
    record = grow_vision.grow(grown, 2, stem=True)  # widened first, then the stem for the wider patch
    assert record["patch"] == [8, 16] and record["stem"] == {"channels": [32, 64, 128]}
    with pytest.raises(ValueError, match="power of two"):
        vision_stem.VisionStem(12, 32, [8])
    with pytest.raises(ValueError, match="needs 2 positive hidden widths"):
        vision_stem.VisionStem(8, 32, [8])


def test_weights_without_the_stem_the_config_asks_for_are_refused(tmp_path: Path) -> None:
    model = EchoGen.create("tiny", seed=0)
    model.save(tmp_path / "plain")
    model.model.config.vision_stem = {"channels": [32, 64]}  # the config says so, the weights lack it
    directory = model.save(tmp_path / "broken")
    with pytest.raises(ValueError, match="asks for a vision stem but the weights lack"):
        EchoGen.load(directory)
