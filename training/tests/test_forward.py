"""The teacher-forced forward passes: l2i_logits feeds the model what generation does, and through_tokenizer
(pmtp.tokenized) shows grounding frames as the image tokenizer writes them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from echogen_training.config import DataConfig
from echogen_training.data.batches import Batcher, to_pixels
from echogen_training.data.sources import build_stream
from echogen_training.forward import through_tokenizer

from echogen_ros.model import vq
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.generation import decode_image
from echogen_ros.model.layout import Layout, LayoutObject
from echogen_ros.model.letterbox import Letterbox
from echogen_ros.world.dataset import world_sample


def test_marked_frames_become_the_tokenizers_picture_and_the_rest_stay() -> None:
    """With the embedded model's real VQ: a marked frame is its 64 px VQ reconstruction scaled back up (checked
    against decode_image, the path imagined scenes take), unmarked frames are untouched."""
    model = EchoGen.load()
    frames = []
    for index in range(2):
        image = world_sample(3, index, "test").image()
        frames.append(Letterbox(image.shape[1], image.shape[0], model.vision_size).apply(image))
    pixels = to_pixels(frames)
    with torch.inference_mode():
        shown = through_tokenizer(model.model, pixels, torch.tensor([True, False]), model.image_size)
        small = F.interpolate(pixels[:1], size=(model.image_size,) * 2, mode="area")
        decoded = decode_image(model.model, vq.encode_tokens(model.model.model.vqmodel, small))  # (1, S, S, 3) uint8
    by_hand = F.interpolate(decoded.permute(0, 3, 1, 2).float() / 127.5 - 1, size=pixels.shape[-2:], mode="bilinear")
    assert torch.equal(shown[1], pixels[1])
    assert float((shown[0] - by_hand[0]).abs().max()) < 2 / 127.5 + 1e-4  # the by-hand path rounds to uint8
    assert float((shown[0] - pixels[0]).abs().mean()) > 0.01  # the tokenizer does not keep every pixel
    assert shown.shape == pixels.shape and float(shown.abs().max()) <= 1.0
    with pytest.raises(ValueError, match="bool mask"):
        through_tokenizer(model.model, pixels, torch.tensor([1, 0]), model.image_size)


def test_a_decoder_map_draws_marked_frames_with_their_layouts() -> None:
    """The embedded model's decoder reads the layout: a marked frame given its layout is what decode_image
    draws of its codes with that layout (the path imagined scenes take), and differs from the picture drawn
    without it; a decoder without a map ignores layouts."""
    model = EchoGen.load()
    assert getattr(model.model.model.vqmodel, "decoder_map", None) is not None
    frames, layouts = [], []
    for index in range(2):
        sample = world_sample(3, index, "test")
        image = sample.image()
        frames.append(Letterbox(image.shape[1], image.shape[0], model.vision_size).apply(image))
        objects = (LayoutObject(label, b) for label, b in zip(sample.labels(), sample.boxes()))
        layouts.append(model.layout_objects(Layout(image.shape[1], image.shape[0], tuple(objects))))
    pixels, rows = to_pixels(frames), torch.tensor([False, True])
    with torch.inference_mode():
        mapped = through_tokenizer(model.model, pixels, rows, model.image_size, layouts)
        unmapped = through_tokenizer(model.model, pixels, rows, model.image_size)
        small = F.interpolate(pixels[1:], size=(model.image_size,) * 2, mode="area")
        codes = vq.encode_tokens(model.model.model.vqmodel, small)
        decoded = decode_image(model.model, codes, [layouts[1]])
    by_hand = F.interpolate(decoded.permute(0, 3, 1, 2).float() / 127.5 - 1, size=pixels.shape[-2:], mode="bilinear")
    assert torch.equal(mapped[0], pixels[0])
    assert float((mapped[1] - by_hand[0]).abs().max()) < 2 / 127.5 + 1e-4  # the by-hand path rounds to uint8
    assert float((mapped[1] - unmapped[1]).abs().mean()) > 1e-3  # the map changed the picture
    with pytest.raises(ValueError, match="one layout per frame"):
        through_tokenizer(model.model, pixels, rows, model.image_size, layouts[:1])
    plain = EchoGen.create("tiny")
    with torch.inference_mode():
        ignored = through_tokenizer(plain.model, pixels, rows, plain.image_size, layouts)
        assert torch.equal(ignored, through_tokenizer(plain.model, pixels, rows, plain.image_size))


def test_the_batcher_marks_frames_with_the_probability_and_draws_the_rest_as_before() -> None:
    model = EchoGen.create("tiny")
    records = build_stream(DataConfig(source="world", count=16, render_scales=(0.25,))).take(16)
    every = Batcher(model, seed=0).i2l(records, tokenized=1.0)
    assert every.tokenized is not None and bool(every.tokenized.all())
    assert every.tokenized.shape[0] == every.pixels.shape[0]
    assert Batcher(model, seed=0).i2l(records).tokenized is None
    batcher = Batcher(model, seed=0)  # with marks, every frame's layout comes along, for a decoder map to read
    assert every.layouts == [batcher.layout(r) for r in records if r.refs] and len(every.layouts) == len(every.pixels)
    assert Batcher(model, seed=0).i2l(records).layouts is None
    some = Batcher(model, seed=0).i2l(records * 8, recolour=0.5, tokenized=0.5)
    assert 0.2 < float(some.tokenized.float().mean()) < 0.8
    plain = Batcher(model, seed=0).i2l(records * 8, recolour=0.5)
    assert torch.equal(some.seq.ids, plain.seq.ids)  # the expressions drawn do not depend on the marks
    with pytest.raises(ValueError, match="tokenized"):
        Batcher(model, seed=0).i2l(records, tokenized=1.5)
    assert np.isfinite(every.pixels.numpy()).all()


@pytest.mark.parametrize(("positions", "layout_map"), [(False, False), (True, False), (False, True), (True, True)])
def test_teacher_forced_logits_match_generation(positions: bool, layout_map: bool) -> None:
    """Training (l2i_logits) and inference (generate_image_tokens) must feed the model the same inputs:
    greedy tokens decoded without guidance are the argmax of the teacher-forced logits on themselves,
    with and without image-token positions and the layout map (each must change what the model sees)."""
    from echogen_training.data.batches import left_pad
    from echogen_training.forward import l2i_logits

    from echogen_ros.model import generation

    model = EchoGen.create("tiny", seed=0)
    janus = model.model.eval()
    if positions:
        generation.enable_image_positions(janus, model.scheme)
        assert generation.image_positions(janus).shape == (
            model.scheme.image_tokens,
            janus.config.text_config.hidden_size,
        )
    if layout_map:
        generation.enable_layout_map(janus, model.scheme)
    cup, plate = model.tokenizer.token_to_id("cup"), model.tokenizer.token_to_id("plate")
    cond, _ = model.scheme.l2i_prompt([], [([cup], (0.1, 0.2, 0.5, 0.6)), ([plate], (0.6, 0.1, 0.9, 0.4))])
    short, _ = model.scheme.l2i_prompt([], [([plate], (0.6, 0.1, 0.9, 0.4))])
    seq = left_pad([cond, short], model.scheme.pad)  # two rows: left padding is exercised
    with torch.no_grad():
        tokens = generation.generate_image_tokens(
            janus, seq.ids, seq.ids, model.scheme.image_tokens, 0.0, 0.0, torch.Generator(), mask=seq.mask
        )
        logits = l2i_logits(janus, seq, tokens)
    assert torch.equal(logits.argmax(-1), tokens)
    plain = EchoGen.create("tiny", seed=0).model.eval()
    with torch.no_grad():
        changed = not torch.allclose(l2i_logits(plain, seq, tokens), logits)
    assert changed == (positions or layout_map)
