"""The inventory's prompt and target (scheme.py) on hand-made layouts: the order, the round trip, truncation at
max_objects, the grammar a parse holds to; and every existing prompt exactly as it was (no new token)."""

from __future__ import annotations

import pytest

from echogen_ros.model.scheme import (
    BOS,
    BOX,
    BOX_END,
    EOS,
    I2L,
    IMAGE,
    REF,
    REF_END,
    SPECIAL_TOKENS,
    inventory_order,
)  # fmt: skip
from echogen_ros.model.tokenizer import build_word_tokenizer, encode_text, token_scheme

BINS = 64
TOKENIZER = build_word_tokenizer(BINS)
SCHEME = token_scheme(TOKENIZER, BINS, image_tokens=16)
S = SCHEME.special

# hand-made, listed out of order: the plate is lowest, the two cups share a top (bin 12) and differ in left
LAYOUT = [
    ("blue plate", (0.30, 0.70, 0.60, 0.90)),
    ("red cup", (0.50, 0.20, 0.60, 0.35)),
    ("green bottle", (0.70, 0.05, 0.78, 0.40)),
    ("red cup", (0.10, 0.20, 0.20, 0.35)),
]


def ids(label: str) -> list[int]:
    return encode_text(TOKENIZER, label)


def objects(layout=LAYOUT) -> list[tuple[list[int], tuple]]:
    return [(ids(label), box) for label, box in layout]


def test_the_inventory_lists_objects_top_to_bottom_then_left_to_right() -> None:
    listed = SCHEME.parse_inventory(SCHEME.inventory_target(objects(), max_objects=12))
    assert [TOKENIZER.decode(label) for label, _ in listed] == ["green bottle", "red cup", "red cup", "blue plate"]
    assert [box[0] for _, box in listed][1:3] == [0.1015625, 0.5078125]  # the left cup first: bin centres


def test_target_and_parse_round_trip_to_the_bins() -> None:
    target = SCHEME.inventory_target(objects(), max_objects=12)
    assert target[-1] == S[EOS] and target.count(S[REF]) == 4
    first = [S[REF], *ids("green bottle"), S[REF_END], S[BOX], *SCHEME.box_tokens((0.70, 0.05, 0.78, 0.40)), S[BOX_END]]
    assert target[: len(first)] == first  # an object exactly as an L2I prompt writes it
    for (label, box), (want_label, want_box) in zip(SCHEME.parse_inventory(target), inventory_order(SCHEME, objects())):
        assert label == want_label and SCHEME.box_tokens(box) == SCHEME.box_tokens(want_box)


def test_the_order_does_not_depend_on_the_order_given() -> None:
    assert SCHEME.inventory_target(objects(LAYOUT[::-1]), 12) == SCHEME.inventory_target(objects(), 12)


def test_an_inventory_keeps_the_first_max_objects_in_its_order() -> None:
    listed = SCHEME.parse_inventory(SCHEME.inventory_target(objects(), max_objects=2))
    assert [TOKENIZER.decode(label) for label, _ in listed] == ["green bottle", "red cup"]
    assert SCHEME.inventory_target([], max_objects=12) == [S[EOS]] and SCHEME.parse_inventory([S[EOS]]) == []


@pytest.mark.parametrize(
    "tokens, message",
    [
        ([S[BOX]], "must open with <ref>"),
        ([S[REF], *ids("red cup")], "must open with <ref> and close its label"),
        ([S[REF], S[REF_END], S[BOX]], "must be words"),
        ([S[REF], *ids("cup"), S[REF_END], S[BOX], SCHEME.bin_offset, S[BOX_END]], "needs <box> x1 y1 x2 y2 </box>"),
        ([S[REF], *ids("cup"), S[REF_END], S[BOX], *[SCHEME.bin_offset] * 3, S[EOS], S[BOX_END]], "four box-bin"),
    ],
)
def test_a_parse_refuses_tokens_out_of_the_grammar(tokens: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SCHEME.parse_inventory(tokens)


def test_the_inventory_prompt_is_the_image_after_i2l_and_no_token_is_new() -> None:
    assert SCHEME.inventory_prompt() == [S[BOS], S[I2L], *[S[IMAGE]] * 16]
    assert SPECIAL_TOKENS == ("<pad>", "<unk>", "<bos>", "<eos>", "<image>", "<ref>", "</ref>", "<box>", "</box>",
                              "<l2i>", "<i2l>", "<boi>", "<eoi>")  # fmt: skip


def test_the_existing_prompts_are_as_they_were() -> None:
    box = (0.1, 0.2, 0.3, 0.4)
    assert SCHEME.i2l_prompt(ids("the red cup")) == [S[BOS], S[I2L], S[REF], *ids("the red cup"), S[REF_END],
                                                      *[S[IMAGE]] * 16, S[BOX]]  # fmt: skip
    assert SCHEME.i2l_target(box) == [*SCHEME.box_tokens(box), S[BOX_END], S[EOS]]
    assert SCHEME.i2l_target(None) == [S[BOX_END], S[EOS]]
    cond, _ = SCHEME.l2i_prompt(ids("a table"), [(ids("red cup"), box)])
    assert cond == [S[BOS], S["<l2i>"], *ids("a table"), S[REF], *ids("red cup"), S[REF_END], S[BOX],
                    *SCHEME.box_tokens(box), S[BOX_END], S["<boi>"]]  # fmt: skip
