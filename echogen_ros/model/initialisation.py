"""Structured initialisation of a from-scratch model: where things are, made linearly readable from step 0.

A randomly initialised ViT has no notion of where a patch is until its learned position embeddings
acquire one, and randomly initialised `<bin_k>` embeddings have no notion that bin 40 is next to bin 41.
Both have to be discovered through the box-token loss before grounding can localise anything, which is
what kept small from-scratch runs predicting size priors. Starting them from sine-cosine codes (2-D over
the patch grid, as in MAE; 1-D over the bin index) gives both an ordinal structure at step 0; they
remain ordinary trainable parameters.
"""

from __future__ import annotations

import math

import torch
from transformers import JanusForConditionalGeneration

from echogen_ros.model.scheme import TokenScheme

SPAN = 64.0  # a grid or bin range is coded as positions 0 … SPAN: neighbours alike, the ends far apart


def sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """(P,) positions → (P, dim) sine-cosine codes (dim even), frequencies 1 … 1/10000."""
    if dim % 2:
        raise ValueError(f"sine-cosine code needs an even width, got {dim}")
    freqs = torch.exp(-math.log(10000.0) * torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    angles = positions.to(torch.float64)[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def sincos_2d(side: int, dim: int) -> torch.Tensor:
    """(side², dim) codes for a side×side grid in raster order: half the width codes y, half x; the grid
    is spread over SPAN units so that a small grid still varies in many of the code's frequencies."""
    if dim % 4:
        raise ValueError(f"2-D sine-cosine code needs a width divisible by 4, got {dim}")
    coords = torch.arange(side) * (SPAN / side)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    return torch.cat([sincos_1d(ys.flatten(), dim // 2), sincos_1d(xs.flatten(), dim // 2)], dim=1)


@torch.no_grad()
def structure_positions(model: JanusForConditionalGeneration, scheme: TokenScheme) -> None:
    """Vision position embeddings ← 2-D codes; bin-token embeddings ← 1-D codes of the bin index,
    scaled to the embedding table's own spread (the LM head is tied to it)."""
    vision = model.model.vision_model.embeddings
    table = vision.position_embedding.weight
    side = math.isqrt(table.shape[0])
    if side * side != table.shape[0]:
        raise ValueError(f"vision position table of {table.shape[0]} rows is not a square grid")
    table.copy_(sincos_2d(side, table.shape[1]).to(table.dtype))

    embeddings = model.get_input_embeddings().weight
    rows = slice(scheme.bin_offset, scheme.bin_offset + scheme.bins)
    spread = float(embeddings.std())
    codes = sincos_1d(torch.arange(scheme.bins) * (SPAN / scheme.bins), embeddings.shape[1])
    embeddings[rows] = (codes / codes.std() * spread).to(embeddings.dtype)
