"""The layout-conditioned VQ decoder (`model.decoder_map`): it starts as Janus' decoder, it reads what the layout
puts in each cell at every decoder scale, imagining passes it the layout, and it survives save and load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from echogen_ros.model import checkpoint, generation, layout_decoder, vq
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.layout import Layout, LayoutObject

LAYOUT = Layout(64, 48, (LayoutObject("red cup", (4.0, 6.0, 30.0, 40.0)), LayoutObject("blue plate", (34, 8, 60, 30))))


def test_a_new_decoder_map_decodes_as_janus_until_it_is_trained(mapped_model) -> None:
    model = mapped_model(drawn=False)
    vqmodel = model.model.model.vqmodel
    assert layout_decoder.conditioned_inputs(vqmodel) == model.model.config.decoder_map["channels"]
    tokens = torch.randint(vqmodel.quantize.embedding.num_embeddings, (2, model.scheme.generation_tokens))
    layouts = [model.layout_objects(LAYOUT), model.layout_objects(LAYOUT)[:1]]
    with torch.no_grad():
        janus = model.model.decode_image_tokens(tokens).float()
        ours = layout_decoder.decode(
            vqmodel, vq.token_latents(vqmodel, tokens), *generation.label_boxes(model.model, layouts)
        )
    assert torch.allclose(janus, ours.permute(0, 2, 3, 1), atol=1e-5)


def test_the_map_feeds_each_cell_what_the_layout_puts_there(randomise) -> None:
    condition = randomise(layout_decoder.DecoderMap(width=3, channels=[2]))
    labels = torch.tensor([[[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]]])  # a label, then a padding object
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.375], [0.0, 0.0, 0.0, 0.0]]])  # 2 × 1.5 cells of a 4 × 4 grid
    with torch.no_grad():
        mapped = condition(0, labels, boxes, grid=4)  # (1, 2, 4, 4)
        full = condition.levels[0](labels[0, 0])
    assert mapped.shape == (1, 2, 4, 4)
    assert torch.allclose(mapped[0, :, 0, 0], full) and torch.allclose(mapped[0, :, 0, 1], full)
    assert torch.allclose(mapped[0, :, 1, 0], full * 0.5)  # half of the second row's cell is covered
    assert torch.count_nonzero(mapped[0, :, 2:]) == 0 and torch.count_nonzero(mapped[0, :, :, 2:]) == 0


def test_a_trained_map_changes_imagined_scenes_only_when_asked_and_only_through_the_layout(mapped_model) -> None:
    plain = mapped_model(drawn=False).imagine(LAYOUT, seed=3)
    model = mapped_model()
    drawn = model.imagine(LAYOUT, seed=3, decoder_map=True)  # the same tokens (the LM is unchanged), with the map
    assert drawn.shape == plain.shape and not np.array_equal(drawn, plain)
    assert np.array_equal(model.imagine(LAYOUT, seed=3), plain)  # by default the codes alone are drawn
    with pytest.raises(ValueError, match="no layout-reading decoder"):
        EchoGen.create("tiny").imagine(LAYOUT, seed=3, decoder_map=True)
    tokens = torch.randint(model.model.config.vq_config.num_embeddings, (1, model.scheme.generation_tokens))
    with torch.no_grad():  # without a layout the decoder is Janus' (the map reads nothing)
        assert torch.equal(
            generation.decode_image(model.model, tokens), generation.decode_image(model.model, tokens, None)
        )
        with_layout = generation.decode_image(model.model, tokens, [model.layout_objects(LAYOUT)])
    assert not torch.equal(with_layout, generation.decode_image(model.model, tokens))


def test_the_map_is_saved_and_loaded_with_the_model(mapped_model, tmp_path: Path) -> None:
    model = mapped_model()
    again = EchoGen.load(model.save(tmp_path / "mapped"))
    assert again.model.config.decoder_map == model.model.config.decoder_map
    saved, loaded = model.model.model.vqmodel.decoder_map, again.model.model.vqmodel.decoder_map
    assert all(torch.equal(a, b) for a, b in zip(saved.state_dict().values(), loaded.state_dict().values()))
    assert np.array_equal(
        again.imagine(LAYOUT, seed=5, decoder_map=True), model.imagine(LAYOUT, seed=5, decoder_map=True)
    )
    assert getattr(EchoGen.create("tiny").model.model.vqmodel, "decoder_map", None) is None  # off unless enabled


def test_a_config_asking_for_a_map_the_weights_lack_is_refused(tmp_path: Path) -> None:
    directory = EchoGen.create("tiny").save(tmp_path / "plain")
    config = json.loads((directory / checkpoint.CONFIG).read_text())
    vq_model = EchoGen.create("tiny").model.model.vqmodel
    config["decoder_map"] = {"channels": layout_decoder.conditioned_inputs(vq_model)}
    (directory / checkpoint.CONFIG).write_text(json.dumps(config))
    checkpoint.write_manifest(directory, json.loads((directory / checkpoint.MANIFEST).read_text()))
    with pytest.raises(checkpoint.CheckpointError, match="decoder map but the weights lack"):
        EchoGen.load(directory)
    config["decoder_map"] = {"channels": [7, 7]}
    (directory / checkpoint.CONFIG).write_text(json.dumps(config))
    checkpoint.write_manifest(directory, json.loads((directory / checkpoint.MANIFEST).read_text()))
    with pytest.raises(checkpoint.CheckpointError, match="do not fit this VQ decoder"):
        EchoGen.load(directory)


def test_the_decoder_reads_a_layout_only_when_it_has_a_map(mapped_model) -> None:
    """`decoder_layout`: the layout's labels and boxes for a decoder map, nothing (and no work) without one."""
    plain = EchoGen.create("tiny")
    layouts = [plain.layout_objects(LAYOUT)]
    assert generation.decoder_layout(plain.model, layouts) == (None, None)
    model = mapped_model()
    assert generation.decoder_layout(model.model, None) == (None, None)
    labels, boxes = generation.decoder_layout(model.model, layouts)
    expected = generation.label_boxes(model.model, layouts)
    assert torch.equal(labels, expected[0]) and torch.equal(boxes, expected[1]) and labels.shape[:2] == (1, 2)


def test_a_separated_map_keeps_its_decoder_and_janus_draws_the_codes_alone(mapped_model, randomise, tmp_path) -> None:
    """`separate`: the decoder trained with the map goes with the map, a decoder of the same codebook that reads
    codes only becomes Janus' (what `imagine` draws with); both are saved and loaded."""
    model, plain = mapped_model(), EchoGen.create("tiny", seed=0)  # the same codebook (the same seed)
    randomise(plain.model.model.vqmodel.decoder.conv_out, seed=9)  # a decoder that draws otherwise
    tokens = model.imagine_tokens(LAYOUT, seed=4)
    mapped_before = model.draw(tokens, LAYOUT, decoder_map=True)
    layout_decoder.separate(model.model, plain.model.model.vqmodel)
    assert model.model.config.decoder_map["decoder"] is True
    assert np.array_equal(model.draw(tokens, LAYOUT, decoder_map=True), mapped_before)
    assert np.array_equal(model.draw(tokens, LAYOUT), plain.draw(tokens, LAYOUT))
    assert not np.array_equal(model.draw(tokens, LAYOUT), mapped_before)
    assert np.array_equal(model.imagine(LAYOUT, seed=4), plain.draw(tokens, LAYOUT))
    again = EchoGen.load(model.save(tmp_path / "separated"))
    assert np.array_equal(again.imagine(LAYOUT, seed=4, decoder_map=True), mapped_before)
    assert np.array_equal(again.imagine(LAYOUT, seed=4), plain.draw(tokens, LAYOUT))
    layout_decoder.enable(again.model)  # training the map again keeps it apart from Janus' decoder
    assert again.model.config.decoder_map["decoder"] is True
    with pytest.raises(ValueError, match="no decoder map sharing"):
        layout_decoder.separate(again.model, plain.model.model.vqmodel)
    other = mapped_model(seed=5)
    with pytest.raises(ValueError, match="another codebook"):
        layout_decoder.separate(other.model, plain.model.model.vqmodel)
