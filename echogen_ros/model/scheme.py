"""The token scheme: special tokens, box-coordinate bins, and the two prompt templates.

One source of truth for how layouts and boxes become tokens:
- an object is `<ref> label </ref> <box> x1 y1 x2 y2 </box>`, each coordinate a bin token `<bin_k>`;
  coordinates are normalised to the model's square (letterboxed) frame, k = floor(u * bins);
- L2I (layout → image): `<bos> <l2i> caption objects… <boi>` then image tokens from the generation head;
  the unconditional prompt for classifier-free guidance keeps the length and masks every condition
  token with `<pad>`;
- I2L (image → layout): `<bos> <i2l> <ref> expression </ref> <image>×N <box>` then four bin tokens, or
  `</box>` at once when no object in the image is what the expression names (an empty box: gRefCOCO's
  no-target answer; `NO_TARGET`). The expression comes first so that every image token can attend to it:
  each patch can tell whether it is the referred object in one layer, and `<box>` only has to read out the
  patch that says so (with the image first, a small model from scratch has to learn a two-hop circuit and
  stalls on size priors).
- the inventory (image → every object; I2L without an expression): `<bos> <i2l> <image>×N`, then every object
  as L2I writes it, `<ref> colour category </ref> <box> x1 y1 x2 y2 </box>`, in `inventory_order` (top to
  bottom by the box's top bin, then left to right), at most `max_objects`, ended by `<eos>`. No token is
  new: an I2L prompt is told apart by the `<ref>` its expression opens before the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from echogen_ros.model.letterbox import Letterbox

I2L_LAYOUT = "ref-image-box"  # recorded in model manifests: the I2L prompt order a model was trained with
PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
IMAGE = "<image>"
REF, REF_END, BOX, BOX_END = "<ref>", "</ref>", "<box>", "</box>"
L2I, I2L, BOI, EOI = "<l2i>", "<i2l>", "<boi>", "<eoi>"
NO_TARGET = BOX_END  # `<box></box>`: the I2L answer when no object is what the expression names
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, BOS, EOS, IMAGE, REF, REF_END, BOX, BOX_END, L2I, I2L, BOI, EOI)


# a layout as the model reads it: per object (label ids, box normalised to the letterboxed model frame)
TokenLayout = list[tuple[list[int], tuple[float, float, float, float]]]


def token_layout(
    encode: Callable[[str], list[int]],
    width: int,
    height: int,
    size: int,
    objects: Iterable[tuple[str, Sequence[float]]],
) -> TokenLayout:
    """(label, box in pixels of a `width`×`height` image) objects as a `size` px model frame reads them."""
    letterbox = Letterbox(width, height, size)
    return [(encode(label), letterbox.normalised(box)) for label, box in objects]


def bin_token(k: int) -> str:
    return f"<bin_{k}>"


def coordinate_bin(u: float, bins: int) -> int:
    """Normalised coordinate u in [0, 1] → bin index in [0, bins)."""
    if not math.isfinite(u):
        raise ValueError(f"non-finite coordinate {u}")
    return min(bins - 1, max(0, int(math.floor(u * bins))))


def bin_center(k: int, bins: int) -> float:
    return (k + 0.5) / bins


@dataclass(frozen=True)
class TokenScheme:
    """Token ids of the scheme inside one tokenizer (bins are a contiguous id range)."""

    bins: int
    bin_offset: int  # id of <bin_0>
    special: dict[str, int]
    image_tokens: int  # <image> placeholders per I2L prompt (= vision patches)
    generation_tokens: int  # image tokens an L2I answer writes (= VQ codes)

    @property
    def pad(self) -> int:
        return self.special[PAD]

    def is_bin(self, token_id: int) -> bool:
        return self.bin_offset <= token_id < self.bin_offset + self.bins

    def box_tokens(self, box: Sequence[float]) -> list[int]:
        """Box (x1, y1, x2, y2) normalised to [0, 1] → four bin token ids."""
        return [self.bin_offset + coordinate_bin(u, self.bins) for u in box]

    def box_from_tokens(self, tokens: Sequence[int]) -> tuple[float, float, float, float]:
        """Four bin token ids → normalised box (bin centres). Raises on a non-bin token."""
        if len(tokens) != 4 or not all(self.is_bin(t) for t in tokens):
            raise ValueError(f"expected four box-bin tokens, got {list(tokens)}")
        x1, y1, x2, y2 = (bin_center(t - self.bin_offset, self.bins) for t in tokens)
        return x1, y1, x2, y2

    def object_tokens(self, label_ids: Sequence[int], box: Sequence[float]) -> list[int]:
        s = self.special
        return [s[REF], *label_ids, s[REF_END], s[BOX], *self.box_tokens(box), s[BOX_END]]

    def l2i_prompt(
        self, caption_ids: Sequence[int], objects: Sequence[tuple[Sequence[int], Sequence[float]]]
    ) -> tuple[list[int], list[int]]:
        """(conditional, unconditional) L2I prompts of equal length; objects are (label ids, box)."""
        condition = list(caption_ids)
        for label_ids, box in objects:
            condition += self.object_tokens(label_ids, box)
        s = self.special
        cond = [s[BOS], s[L2I], *condition, s[BOI]]
        uncond = [s[BOS], s[L2I], *([self.pad] * len(condition)), s[BOI]]
        return cond, uncond

    def i2l_prompt(self, expression_ids: Sequence[int]) -> list[int]:
        s = self.special
        return [s[BOS], s[I2L], s[REF], *expression_ids, s[REF_END], *([s[IMAGE]] * self.image_tokens), s[BOX]]

    def i2l_target(self, box: Sequence[float] | None) -> list[int]:
        """What the model should produce after an I2L prompt (for training); None: no object is meant, the
        box is empty (`NO_TARGET`)."""
        coordinates = self.box_tokens(box) if box is not None else []
        return [*coordinates, self.special[BOX_END], self.special[EOS]]

    def inventory_prompt(self) -> list[int]:
        """The inventory's prompt: the image alone after `<i2l>`; the answer starts at its last token."""
        return [self.special[BOS], self.special[I2L], *([self.special[IMAGE]] * self.image_tokens)]

    def inventory_target(self, objects: Sequence[tuple[Sequence[int], Sequence[float]]], max_objects: int) -> list[int]:
        """What the model should produce after the inventory prompt (for training): the (label ids, normalised
        box) objects in `inventory_order`, the first `max_objects` of them, then `<eos>`."""
        tokens = []
        for label_ids, box in inventory_order(self, objects)[:max_objects]:
            tokens += self.object_tokens(label_ids, box)
        return [*tokens, self.special[EOS]]

    def parse_inventory(self, tokens: Sequence[int]) -> list[tuple[list[int], tuple[float, float, float, float]]]:
        """An inventory answer's tokens → its (label ids, normalised box at bin centres) objects, in the order
        written; reading stops at `<eos>` or the end. ValueError at the first token out of the grammar."""
        s, objects, i = self.special, [], 0
        while i < len(tokens) and tokens[i] != s[EOS]:
            if tokens[i] != s[REF] or s[REF_END] not in tokens[i + 1 :]:
                raise ValueError(f"an inventory object must open with <ref> and close its label (token {i})")
            close = list(tokens).index(s[REF_END], i + 1)
            label, box = list(tokens[i + 1 : close]), list(tokens[close + 1 : close + 7])
            if not label or any(t in self.special.values() or self.is_bin(t) for t in label):
                raise ValueError(f"the label of the object at token {i} must be words")
            if len(box) != 6 or box[0] != s[BOX] or box[5] != s[BOX_END]:
                raise ValueError(f"the object at token {i} needs <box> x1 y1 x2 y2 </box> after its label")
            objects.append((label, self.box_from_tokens(box[1:5])))
            i = close + 7
        return objects

    @property
    def no_target(self) -> int:
        """The token id that answers "nothing here" in place of the first box bin (`NO_TARGET`)."""
        return self.special[NO_TARGET]


def inventory_order(
    scheme: TokenScheme, objects: Sequence[tuple[Sequence[int], Sequence[float]]]
) -> list[tuple[Sequence[int], Sequence[float]]]:
    """(label ids, normalised box) objects in the order an inventory lists them: by the bins the box is written
    with, top (y1) first, then left (x1), then bottom and right, then label ids (a deterministic order of what
    the model sees: two tops in one bin are one top to it)."""

    def key(item: tuple[Sequence[int], Sequence[float]]) -> tuple:
        x1, y1, x2, y2 = scheme.box_tokens(item[1])
        return y1, x1, y2, x2, tuple(item[0])

    return sorted(objects, key=key)
