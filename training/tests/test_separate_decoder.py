"""`echogen-train separate-decoder` (echogen_training.tools.separate_decoder): the decoder trained with the map
goes with the map, the plain model's decoder becomes the one imagined scenes are drawn with, the rest is the
model's; a plain model that has a map, or another codebook, is refused and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from echogen_training.cli import main as echogen_train

from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.layout import Layout, LayoutObject

LAYOUT = Layout(64, 48, (LayoutObject("red cup", (4.0, 6.0, 30.0, 40.0)),))


def test_the_map_keeps_its_decoder_and_imagined_scenes_get_the_plain_one(mapped_model, randomise, capsys, tmp_path):
    model_dir = mapped_model().save(tmp_path / "mapped")
    plain = EchoGen.create("tiny", seed=0)  # the mapped model's codebook (the same seed), another decoder
    randomise(plain.model.model.vqmodel.decoder.conv_out, seed=9)
    plain_dir = plain.save(tmp_path / "plain")
    assert echogen_train(["separate-decoder", str(model_dir), str(plain_dir), "--out", str(tmp_path / "out")]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["donor"] == str(plain_dir.resolve()) and record["model"] == str(model_dir.resolve())
    model, out = EchoGen.load(model_dir), EchoGen.load(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "decoder_separation.json").read_text()) == record
    assert out.model.config.decoder_map["decoder"] is True
    tokens = model.imagine_tokens(LAYOUT, seed=1)
    assert torch.equal(out.imagine_tokens(LAYOUT, seed=1), tokens)  # the generator is the model's
    assert np.array_equal(out.draw(tokens, LAYOUT, decoder_map=True), model.draw(tokens, LAYOUT, decoder_map=True))
    assert np.array_equal(out.draw(tokens, LAYOUT), plain.draw(tokens, LAYOUT))


def test_a_plain_model_with_a_map_or_another_codebook_is_refused(mapped_model, capsys, tmp_path: Path) -> None:
    model_dir = mapped_model().save(tmp_path / "mapped")
    for name, plain in (("mapped", mapped_model()), ("other", EchoGen.create("tiny", seed=3))):
        plain_dir, out = plain.save(tmp_path / f"plain_{name}"), tmp_path / f"out_{name}"
        assert echogen_train(["separate-decoder", str(model_dir), str(plain_dir), "--out", str(out)]) == 2
        assert ("reads codes only" if name == "mapped" else "another codebook") in capsys.readouterr().err
        assert not out.exists()
