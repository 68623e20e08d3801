"""Grounding on tensors: I2L prompts left-padded into one batch, greedy boxes for them in given image
features, and every object of a layout grounded back in an image. EchoGen grounds camera frames through
these, and Cycle RL the images its generator drew."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import JanusForConditionalGeneration

from echogen_ros.model import generation
from echogen_ros.model.layout import Detection, assign_boxes, distinct, label_groups
from echogen_ros.model.scheme import TokenScheme

EXTRA_BEAMS = 4  # beams beyond top_k, so that top_k remain once overlapping ones are dropped
Layout = Sequence[tuple[Sequence[int], Sequence[float]]]  # (label ids, normalised box) per object


def left_padded(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows left-padded with `pad` to one length: (ids, mask), (B, T) each; every row ends at the last
    column (where a box is read, or the next token predicted). Training's sequences are built on it too."""
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, length - len(row) :] = torch.tensor(row)
        mask[i, length - len(row) :] = 1
    return ids, mask


def prompt_batch(scheme: TokenScheme, expressions: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """I2L prompts for expression ids, left-padded into one batch (`left_padded`)."""
    return left_padded([scheme.i2l_prompt(e) for e in expressions], scheme.pad)


def raw_scores(probs: torch.Tensor) -> torch.Tensor:
    """A box's raw score from its bin probabilities (B, 4): their geometric mean (B,), as `generation.beam_search`
    scores its beams."""
    return probs.clamp_min(1e-30).log().mean(-1).exp()


def locate(
    model: JanusForConditionalGeneration,
    scheme: TokenScheme,
    features: torch.Tensor,
    ids: torch.Tensor,
    mask: torch.Tensor,
    window: int = generation.REFINE_BINS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy box tokens, their probabilities and coordinates refined over `window` bins (each (B, 4)), and
    the no-target probability (B,), for prompts (B, T) each reading its row of image `features` (B, N, D)."""
    return generation.decode_boxes(model, scheme, generation.embed(model, ids, features), mask, window)


def ground_layouts(
    model: JanusForConditionalGeneration, scheme: TokenScheme, features: torch.Tensor, layouts: Sequence[Layout]
) -> list[list[tuple]]:
    """Every object of layout i grounded in image i (`features` (I, N, D)): normalised boxes, in layout order.
    Each object gets its label's greedy box; the objects of a label a layout names n times get the label's n
    best distinct boxes instead, matched to them by IoU (`assign_boxes`), as the cycle check grounds back
    (alone, two red cups get the same box and one always fails)."""
    device = features.device
    ids, mask = prompt_batch(scheme, [label for layout in layouts for label, _ in layout])
    index = torch.tensor([i for i, layout in enumerate(layouts) for _ in layout], device=device)
    ids, mask = ids.to(device), mask.to(device)
    embeds = generation.embed(model, ids, features[index])
    _, _, found, _ = generation.decode_boxes(model, scheme, embeds, mask)
    boxes = [tuple(coords) for coords in found.tolist()]
    out, k = [], 0
    for layout in layouts:
        rows = slice(k, k + len(layout))
        out.append(_alike_apart(model, scheme, layout, boxes[rows], embeds[rows], mask[rows]))
        k += len(layout)
    return out


def _alike_apart(model, scheme: TokenScheme, layout: Layout, boxes: list[tuple], embeds, mask) -> list[tuple]:
    boxes = list(boxes)
    for rows in label_groups([tuple(ids) for ids, _ in layout]).values():
        if len(rows) < 2:
            continue
        prompt = embeds[rows[0], mask[rows[0]].bool()][None]  # the label's prompt without its padding
        beams = generation.beam_boxes(model, scheme, prompt, len(rows) + EXTRA_BEAMS)
        candidates = distinct([Detection(tuple(coords), score, "") for _, score, coords in beams])[: len(rows)]
        match = assign_boxes([layout[r][1] for r in rows], [d.box for d in candidates])
        for r, j in zip(rows, match):
            if j is not None:
                boxes[r] = candidates[j].box
    return boxes
