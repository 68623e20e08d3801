"""Records → model tensors: letterboxed pixels and left-padded token sequences for L2I and I2L.

Left padding puts every prompt's end in the last column, as inference does (`EchoGen.ground_many`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.grounding import left_padded
from echogen_ros.model.letterbox import Letterbox
from echogen_ros.model.pixels import unit_tensor
from echogen_ros.model.scheme import TokenLayout, token_layout
from echogen_ros.model.tokenizer import encode_text
from echogen_ros.world.catalog import CATEGORIES, COLOURS
from echogen_training.data.records import Record

IGNORE = -100


@dataclass
class Sequences:
    ids: torch.Tensor  # (B, T) left-padded
    mask: torch.Tensor  # (B, T) 1 = real token
    positions: torch.Tensor  # (B, T)
    labels: torch.Tensor  # (B, T) target ids, IGNORE elsewhere


@dataclass
class I2LBatch:
    seq: Sequences
    pixels: torch.Tensor  # (I, 3, Sv, Sv) in [-1, 1]
    image_index: torch.Tensor  # (B,) which image each row grounds in
    patch: torch.Tensor | None = None  # (B,) the patch holding the target box's centre; IGNORE: no target
    tokenized: torch.Tensor | None = None  # (I,) bool: frames the objective sends through the image tokenizer
    layouts: list[list[tuple[list[int], tuple[float, float, float, float]]]] | None = None  # per frame, as `layout`
    # record index → its frame, for the frames shown as recorded (colours kept, not marked `tokenized`): the
    # frames an inventory batch may share (`Batcher.inventory`)
    as_recorded: dict[int, int] | None = None
    # (I, N): the world category (index into catalog.CATEGORIES) of the object centred in each patch of each frame,
    # IGNORE where none is (or its label names no world category); only when asked (`pmtp.category_weight`)
    categories: torch.Tensor | None = None


@dataclass
class InventoryBatch:
    """Scene inventories (`scheme.inventory_prompt` + `inventory_target`) of records' frames."""

    seq: Sequences
    pixels: torch.Tensor  # (J, 3, Sv, Sv) in [-1, 1]: its own frames (those the shared I2L batch lacks)
    image_index: torch.Tensor  # (B,) the frame each row lists: i < I is the shared I2L batch's, I + j its own j


@dataclass
class PatchBatch:
    """Dense targets for the vision stage: each object is assigned to the patch holding its box centre."""

    pixels: torch.Tensor  # (B, 3, Sv, Sv) in [-1, 1]
    words: torch.Tensor  # (B, N, V) 1 for every token of the label of the object at a patch
    boxes: torch.Tensor  # (B, N, 4) that object's box, normalised to the letterboxed frame
    present: torch.Tensor  # (B, N) bool: an object is centred in the patch


@dataclass
class L2IBatch:
    seq: Sequences  # prompts only (labels unused)
    gen_pixels: torch.Tensor  # (B, 3, Sg, Sg) in [-1, 1]: the images whose VQ tokens are the targets
    layouts: list[list[tuple[list[int], tuple[float, float, float, float]]]]  # per row: (label ids, norm box)


def left_pad(rows: list[list[int]], pad: int, targets: list[int] | None = None) -> Sequences:
    """Left-pad token rows (`grounding.left_padded`), with positions and labels; `targets[i]` = how many
    trailing tokens of row i are labels."""
    ids, mask = left_padded(rows, pad)
    labels = torch.full(ids.shape, IGNORE, dtype=torch.long)
    for i, row in enumerate(rows):
        if targets and targets[i]:
            labels[i, ids.shape[1] - targets[i] :] = torch.tensor(row[-targets[i] :])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return Sequences(ids, mask, positions, labels)


def listed_label(label: str) -> str:
    """A layout label as an inventory lists it, without a leading article: "the red cup" → "red cup"."""
    first, _, rest = label.strip().partition(" ")
    return rest if first.lower() in ("the", "a", "an") and rest else label.strip()


def centred_objects(objects: list[tuple[str, tuple]], letterbox: Letterbox, grid: int) -> dict[int, tuple[str, tuple]]:
    """The object whose box centre each patch of a grid × grid frame holds (raster index → its label and its box
    normalised to the letterboxed frame); smaller objects win a shared patch (they are in front)."""
    out = {}
    for label, box in sorted(objects, key=lambda o: -(o[1][2] - o[1][0]) * (o[1][3] - o[1][1])):
        normalised = letterbox.normalised(box)
        out[centre_patch(normalised, grid)] = (label, normalised)
    return out


def patch_categories(objects: list[tuple[str, tuple]], letterbox: Letterbox, grid: int) -> list[int]:
    """Per patch of a grid × grid frame (raster order): the index in catalog.CATEGORIES of the world category of
    the object `centred_objects` puts there, IGNORE where none is; a label's last word names its category ("the red
    cup" → cup), one naming none is left out."""
    out = [IGNORE] * (grid * grid)
    for cell, (label, _) in centred_objects(objects, letterbox, grid).items():
        words = label.lower().split()
        if words and words[-1] in CATEGORIES:
            out[cell] = CATEGORIES.index(words[-1])
    return out


def centre_patch(box: tuple[float, ...], grid: int) -> int:
    """Raster index of the grid cell holding a normalised box's centre."""
    x1, y1, x2, y2 = box
    cx = min(grid - 1, max(0, int((x1 + x2) / 2 * grid)))
    cy = min(grid - 1, max(0, int((y1 + y2) / 2 * grid)))
    return cy * grid + cx


# colour names beyond the world's own, so expressions of other data (RefCOCO: "the guy in black") count too
COLOUR_WORDS = frozenset(COLOURS) | frozenset(
    ("black", "white", "grey", "gray", "silver", "gold", "golden", "pink", "purple", "violet", "brown", "beige",
     "tan", "orange", "cyan", "teal", "navy", "maroon", "dark", "light", "pale", "bright", "blond", "blonde",
     "colored", "coloured")
)  # fmt: skip


def names_colour(text: str) -> bool:
    """Whether an expression names a colour (a word of COLOUR_WORDS, any case)."""
    return not COLOUR_WORDS.isdisjoint(re.findall(r"[a-z]+", text.lower()))


def without_colours(text: str) -> str:
    """An expression with its colour words (those `names_colour` finds) taken out: "the Red cup" -> "the cup"."""
    return " ".join(w for w in text.split() if not names_colour(w))


def greyscale(frame: np.ndarray) -> np.ndarray:
    """RGB uint8 → the same frame in grey (ITU-R BT.601 luma in all three channels)."""
    luma = frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.repeat(np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def rotate_hue(frame: np.ndarray, degrees: float) -> np.ndarray:
    """RGB uint8 → the same frame with every hue turned by `degrees` (saturation and value kept)."""
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)  # uint8 hue is in half degrees, 0..179
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(degrees / 2))) % 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def fade(frame: np.ndarray, saturation: float) -> np.ndarray:
    """RGB uint8 → the same frame with every saturation scaled by `saturation` (hue and value kept): at 0 every
    pixel is the grey of its brightest channel, so a yellow object turns nearly white."""
    if not 0 <= saturation <= 1:
        raise ValueError(f"a saturation scale must be in [0, 1], got {saturation}")
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
    hsv[..., 1] = np.rint(hsv[..., 1].astype(np.float32) * saturation).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


FADE_SATURATION = (0.0, 0.2)  # pmtp.desaturate: the range of the saturation scale


def to_pixels(frames: list[np.ndarray]) -> torch.Tensor:
    """Letterboxed uint8 frames → (B, 3, S, S) float in [-1, 1]."""
    return unit_tensor(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2))


class Batcher:
    def __init__(self, model: EchoGen, seed: int = 0) -> None:
        self.scheme, self.tokenizer = model.scheme, model.tokenizer
        self.vision_size, self.image_size = model.vision_size, model.image_size
        self.max_objects = model.max_objects
        self.rng = np.random.default_rng(seed)
        self.colour_rng = np.random.default_rng([seed, 3])  # hue turns of grounding frames (pmtp.recolour)
        self.absent_rng = np.random.default_rng([seed, 5])  # no-target rows (pmtp.no_target)

    def text(self, text: str) -> list[int]:
        return encode_text(self.tokenizer, text)

    def absent_expression(self, record: Record, relation: float) -> str:
        """One of the record's no-target expressions: with probability `relation` (drawn only when > 0) its
        relation one, when it has one; otherwise any, alike."""
        if relation > 0 and "relation" in record.absent_kinds and self.absent_rng.random() < relation:
            return record.absent[record.absent_kinds.index("relation")]
        return record.absent[int(self.absent_rng.integers(len(record.absent)))]

    def i2l(
        self,
        records: list[Record],
        recolour: float = 0.0,
        desaturate: float = 0.0,
        tokenized: float = 0.0,
        no_target: float = 0.0,
        no_target_relation: float = 0.0,
        categories: bool = False,
    ) -> I2LBatch | None:
        """One random referring expression per record (records without any are skipped); with probability
        `no_target` one of the record's no-target expressions instead (when it has any), answered by the
        empty box; of those, with probability `no_target_relation` its relation no object satisfies (when it
        has one).

        With probability `recolour` the frame of an expression that names no colour has its hues turned by
        a random angle: which object it refers to does not change, and the grounding learns categories in
        hues the data never paired them with. With probability `desaturate` (instead) such a frame is faded
        toward grey (`fade`), which shows categories in the pale colours no hue turn makes. Expressions naming
        a colour keep their colours. With probability `tokenized` a frame (any expression) is marked for the
        objective to show as the image tokenizer writes it (`forward.through_tokenizer`); the batch then
        carries every frame's layout, which a decoder map reads there as it does for imagined scenes. With
        `categories`, the batch carries each frame's `patch_categories` (hue turns and fading keep them)."""
        for name, value in (("tokenized", tokenized), ("no_target", no_target),
                            ("no_target_relation", no_target_relation)):  # fmt: skip
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        if recolour < 0 or desaturate < 0 or recolour + desaturate > 1:
            raise ValueError(f"recolour {recolour} and desaturate {desaturate} must be ≥ 0 and sum to at most 1")
        rows, frames, marked, layouts, as_recorded, named = [], [], [], [], {}, []
        grid = round(self.scheme.image_tokens**0.5)
        for index, record in enumerate(records):
            if not record.refs:
                continue
            if tokenized > 0:
                layouts.append(self.layout(record))
            text, box = record.refs[int(self.rng.integers(len(record.refs)))]
            # its own generator, drawn only when asked: a run without no-target rows draws what it drew before
            if no_target > 0 and record.absent and self.absent_rng.random() < no_target:
                text, box = self.absent_expression(record, no_target_relation), None
            letterbox = Letterbox(record.width, record.height, self.vision_size)
            rows.append((self.text(text), letterbox.normalised(box) if box is not None else None))
            if categories:
                named.append(patch_categories(record.objects, letterbox, grid))
            frame = shown = letterbox.apply(record.load_image())
            # Its own generator, drawn for every row: the expressions drawn do not depend on these draws, and
            # a run without desaturate draws exactly what it drew before desaturate existed.
            if recolour > 0 or desaturate > 0:
                draw, angle = self.colour_rng.random(), float(self.colour_rng.uniform(30.0, 330.0))
                scale = float(self.colour_rng.uniform(*FADE_SATURATION)) if desaturate > 0 else 1.0
                if not names_colour(text) and draw < recolour:
                    frame = rotate_hue(frame, angle)
                elif not names_colour(text) and draw < recolour + desaturate:
                    frame = fade(frame, scale)
            if tokenized > 0:  # drawn after the colours' draws, so runs without it draw what they drew before
                marked.append(bool(self.colour_rng.random() < tokenized))
            if frame is shown and not (marked and marked[-1]):
                as_recorded[index] = len(frames)
            frames.append(frame)
        if not rows:
            return None
        batch = self.i2l_rows(rows, to_pixels(frames), list(range(len(rows))))
        batch.tokenized = torch.tensor(marked, dtype=torch.bool) if marked else None
        batch.layouts = layouts or None
        batch.as_recorded = as_recorded
        batch.categories = torch.tensor(named, dtype=torch.long) if categories else None
        return batch

    def i2l_rows(
        self, rows: list[tuple[list[int], tuple | None]], pixels: torch.Tensor, image_index: list[int]
    ) -> I2LBatch:
        """I2L sequences for (expression ids, normalised box or None: no target) rows grounded in
        `pixels[image_index]`."""
        sequences, targets = [], []
        for ids, box in rows:
            target = self.scheme.i2l_target(box)
            sequences.append(self.scheme.i2l_prompt(ids) + target)
            targets.append(len(target))
        seq = left_pad(sequences, self.scheme.pad, targets)
        grid = round(self.scheme.image_tokens**0.5)
        patch = [centre_patch(box, grid) if box is not None else IGNORE for _, box in rows]
        return I2LBatch(seq, pixels, torch.tensor(image_index, dtype=torch.long), torch.tensor(patch))

    def inventory(self, records: list[Record], shared: I2LBatch | None = None) -> InventoryBatch | None:
        """The inventory of each record with objects (`listed_label`s, at most the model's `max_objects`), in
        the frame `shared` (an I2L batch of the same records) shows as recorded, else in a frame of its own."""
        rows, targets, frames, index = [], [], [], []
        offset, recorded = (len(shared.pixels), shared.as_recorded or {}) if shared is not None else (0, {})
        for i, record in enumerate(records):
            if not record.objects:
                continue
            objects = ((listed_label(label), box) for label, box in record.objects)
            target = self.scheme.inventory_target(
                token_layout(self.text, record.width, record.height, self.vision_size, objects), self.max_objects
            )
            rows.append(self.scheme.inventory_prompt() + target)
            targets.append(len(target))
            if i in recorded:
                index.append(recorded[i])
            else:
                index.append(offset + len(frames))
                frames.append(Letterbox(record.width, record.height, self.vision_size).apply(record.load_image()))
        if not rows:
            return None
        size = self.vision_size
        pixels = to_pixels(frames) if frames else torch.zeros(0, 3, size, size)
        return InventoryBatch(left_pad(rows, self.scheme.pad, targets), pixels, torch.tensor(index, dtype=torch.long))

    def patches(
        self, records: list[Record], grid: int, vocab: int, decolour: float = 0.0, recolour: float = 0.0
    ) -> PatchBatch:
        """Per-patch label words and boxes (smaller objects win a shared patch: they are in front).

        With probability `decolour` a frame is shown in grey, with probability `recolour` its hues are
        turned by a random angle; either way its labels lose their colour words."""
        words = torch.zeros(len(records), grid * grid, vocab)
        boxes = torch.zeros(len(records), grid * grid, 4)
        present = torch.zeros(len(records), grid * grid, dtype=torch.bool)
        frames = []
        for row, record in enumerate(records):
            letterbox = Letterbox(record.width, record.height, self.vision_size)
            draw = self.rng.random() if decolour > 0 or recolour > 0 else 1.0  # one draw: a frame gets one of them
            grey, turned = draw < decolour, decolour <= draw < decolour + recolour
            frame = letterbox.apply(record.load_image())
            if grey:
                frame = greyscale(frame)
            elif turned:
                frame = rotate_hue(frame, float(self.rng.uniform(30.0, 330.0)))
            frames.append(frame)
            for cell, (label, box) in centred_objects(record.objects, letterbox, grid).items():
                words[row, cell, self.text(without_colours(label) if grey or turned else label)] = 1
                boxes[row, cell] = torch.tensor(box)
                present[row, cell] = True
        return PatchBatch(to_pixels(frames), words, boxes, present)

    def l2i(self, records: list[Record], condition_dropout: float = 0.0) -> L2IBatch | None:
        """Caption + layout prompts (condition masked with probability `condition_dropout`)."""
        prompts, frames, layouts = [], [], []
        for record in records:
            if not record.objects:
                continue
            letterbox = Letterbox(record.width, record.height, self.image_size)
            objects = self.layout(record)
            cond, uncond = self.scheme.l2i_prompt(self.text(record.caption) if record.caption else [], objects)
            prompts.append(uncond if self.rng.random() < condition_dropout else cond)
            frames.append(letterbox.apply(record.load_image()))
            layouts.append(objects)
        if not prompts:
            return None
        return L2IBatch(left_pad(prompts, self.scheme.pad), to_pixels(frames), layouts)

    def layout(self, record: Record) -> TokenLayout:
        """A record's layout as L2I reads it (`scheme.token_layout`), at most the model's `max_objects`."""
        objects = record.objects[: self.max_objects]
        return token_layout(self.text, record.width, record.height, self.image_size, objects)

    def layout_prompts(
        self, layouts: list[list[tuple[list[int], tuple]]], captions: list[str]
    ) -> tuple[Sequences, Sequences]:
        """(conditional, unconditional) prompt batches for already-normalised layouts (RL sampling)."""
        conds, unconds = [], []
        for objects, caption in zip(layouts, captions):
            cond, uncond = self.scheme.l2i_prompt(self.text(caption) if caption else [], objects)
            conds.append(cond)
            unconds.append(uncond)
        return left_pad(conds, self.scheme.pad), left_pad(unconds, self.scheme.pad)
