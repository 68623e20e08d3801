"""Token scheme, tokenizer and letterbox: exact round trips (property tests)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import Tokenizer, pre_tokenizers
from tokenizers.models import WordLevel

from echogen_ros.model.letterbox import Letterbox
from echogen_ros.model.scheme import BOI, BOS, IMAGE, L2I, PAD, SPECIAL_TOKENS
from echogen_ros.model.tokenizer import build_word_tokenizer, encode_text, extend_tokenizer, token_scheme

BINS = 64
TOKENIZER = build_word_tokenizer(BINS)
SCHEME = token_scheme(TOKENIZER, BINS, image_tokens=16)
unit = st.floats(0.0, 1.0, allow_nan=False)


@given(st.lists(st.integers(0, BINS - 1), min_size=4, max_size=4))
def test_box_tokens_round_trip(bins: list[int]) -> None:
    tokens = [SCHEME.bin_offset + b for b in bins]
    assert SCHEME.box_tokens(SCHEME.box_from_tokens(tokens)) == tokens


@given(st.tuples(unit, unit, unit, unit))
def test_box_quantisation_error_is_at_most_half_a_bin(box) -> None:
    decoded = SCHEME.box_from_tokens(SCHEME.box_tokens(box))
    assert np.all(np.abs(np.array(decoded) - np.array(box)) <= 0.5 / BINS + 1e-12)


def test_box_from_tokens_rejects_non_bins() -> None:
    with pytest.raises(ValueError, match="four box-bin tokens"):
        SCHEME.box_from_tokens([SCHEME.bin_offset, SCHEME.bin_offset, SCHEME.pad, SCHEME.bin_offset])
    with pytest.raises(ValueError, match="non-finite"):
        SCHEME.box_tokens([0.1, float("nan"), 0.2, 0.3])


def test_l2i_prompts_mask_the_condition_for_guidance() -> None:
    label = encode_text(TOKENIZER, "red cup")
    cond, uncond = SCHEME.l2i_prompt(encode_text(TOKENIZER, "a wooden table"), [(label, (0.1, 0.2, 0.3, 0.4))])
    s = SCHEME.special
    assert len(cond) == len(uncond)
    assert cond[:2] == uncond[:2] == [s[BOS], s[L2I]] and cond[-1] == uncond[-1] == s[BOI]
    assert set(uncond[2:-1]) == {s[PAD]} and s[PAD] not in cond
    assert TOKENIZER.decode(cond, skip_special_tokens=False).split()[2:5] == ["a", "wooden", "table"]


def test_i2l_prompt_holds_one_placeholder_per_patch() -> None:
    prompt = SCHEME.i2l_prompt(encode_text(TOKENIZER, "the red cup"))
    assert prompt.count(SCHEME.special[IMAGE]) == 16
    assert len(SCHEME.i2l_target((0.1, 0.1, 0.5, 0.5))) == 6


def test_word_tokenizer_knows_the_world_and_marks_unknown_words() -> None:
    ids = encode_text(TOKENIZER, "The Red cup, left of the plate.")
    assert TOKENIZER.decode(ids).split() == ["the", "red", "cup", ",", "left", "of", "the", "plate", "."]
    assert encode_text(TOKENIZER, "the zebra")[1] == TOKENIZER.token_to_id("<unk>")


def test_extending_a_foreign_tokenizer_keeps_its_ids() -> None:
    vocab = {"<unk>": 0, "hello": 1, "world": 2, "<image_placeholder>": 3}
    foreign = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    foreign.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    extended = extend_tokenizer(foreign, bins=10)
    assert [extended.token_to_id(w) for w in ("hello", "world")] == [1, 2]
    scheme = token_scheme(extended, 10, image_tokens=4)
    assert all(name in scheme.special for name in SPECIAL_TOKENS)
    assert extend_tokenizer(extended, bins=10).get_vocab_size() == extended.get_vocab_size()  # idempotent


def test_token_scheme_rejects_a_tokenizer_without_our_tokens() -> None:
    with pytest.raises(ValueError, match="special token"):
        token_scheme(Tokenizer(WordLevel({"<unk>": 0}, unk_token="<unk>")), 8, 4)


sizes = st.integers(2, 4000)
coords = st.floats(0.0, 1.0, allow_nan=False)


@given(sizes, sizes, st.sampled_from([32, 64, 128, 384]), coords, coords, coords, coords)
def test_letterbox_maps_boxes_back_exactly(width, height, size, a, b, c, d) -> None:
    lb = Letterbox(width, height, size)
    box = (min(a, c) * width, min(b, d) * height, max(a, c) * width, max(b, d) * height)
    back = lb.to_image(lb.to_model(box))
    assert np.allclose(back, box, rtol=0, atol=1e-9 * max(width, height))
    assert np.allclose(lb.from_normalised(lb.normalised(box)), box, rtol=0, atol=1e-9 * max(width, height))
    x0, y0, w, h = lb.content
    assert x0 >= 0 and y0 >= 0 and x0 + w <= size and y0 + h <= size and max(w, h) == size


def test_letterbox_image_and_crop_shapes() -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    image[:, :320] = 255
    lb = Letterbox(640, 480, 64)
    frame = lb.apply(image)
    assert frame.shape == (64, 64, 3) and lb.content == (0, 8, 64, 48)
    assert (frame[:8] == 114).all() and (frame[8:56, :30] == 255).all()
    assert lb.crop(frame).shape == (480, 640, 3)
    with pytest.raises(ValueError, match="letterbox expects"):
        lb.apply(np.zeros((10, 10, 3), np.uint8))
