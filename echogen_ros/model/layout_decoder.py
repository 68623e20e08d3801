"""The layout-conditioned VQ decoder (an EchoGen option, off in Janus: `model.decoder_map`).

Janus' VQ decoder draws an image from its codes alone. At 128 px one code of the 16 × 16 grid covers
8 × 8 px, and the part of a cup a code stands for can look like the part of a ball: a decoder that reads
codes only draws what both could be, rounded and without the handle (docs/benchmarks.md, "the tokenizer is
the ceiling"). With the decoder map the decoder also reads the layout the image was asked for: at the
input of its middle block and of every up level, each feature cell gets, for every object of the layout, a
learnt projection of the label's mean word embedding times the fraction of the cell its box covers (the
idea of SPADE, Park et al. 2019: give the semantic layout to every scale of the decoder, not only to the
first). The labels and boxes are read from the L2I prompt as the generator's layout map reads them
(`generation.layout_objects`), so the decoder draws what the generator was asked for, and nothing is
added to a prompt.

The projections start at zero: a model given the map decodes exactly as before until the VQ stage
(`vq.decoder_only=true`, codes fixed: a trained generator keeps its meaning) teaches it to use the map.
The module lives at `model.model.vqmodel.decoder_map` and is saved with the weights; `config.decoder_map`
({"channels": [...]}) says that it exists, so `attach` rebuilds it when a model directory is loaded.

A decoder trained with the map draws objects from the layout whatever the codes say (an empty table's codes
get most of a layout's objects drawn: docs/benchmarks.md, issue 35), so what it draws is not the generator's
work. Imagined scenes are therefore decoded by Janus' decoder, which reads codes only, and the map is an
opt-in (`EchoGen.imagine(decoder_map=True)`). `separate` gives a model both: the map keeps the decoder it
was trained with as its own (`{"channels": [...], "decoder": true}`: `decoder_map.post_quant_conv` and
`decoder_map.decoder` in the weights), and Janus' decoder becomes one that reads codes only (the same
codebook's decoder from before the map was trained).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import JanusForConditionalGeneration
from transformers.models.janus.modeling_janus import JanusVQVAE

from echogen_ros.model import checkpoint


def box_cover(boxes: torch.Tensor, grid: int) -> torch.Tensor:
    """Fraction of each of the grid × grid cells (raster order) that normalised boxes (..., 4) cover."""
    edges = torch.arange(grid + 1, dtype=boxes.dtype, device=boxes.device) / grid
    lo, hi = edges[:-1], edges[1:]

    def overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # (...,) → (..., grid)
        return ((torch.minimum(b[..., None], hi) - torch.maximum(a[..., None], lo)).clamp(min=0) * grid).clamp(max=1)

    x = overlap(boxes[..., 0], boxes[..., 2])
    y = overlap(boxes[..., 1], boxes[..., 3])
    return (y[..., :, None] * x[..., None, :]).flatten(-2)  # x varies fastest


class DecoderMap(nn.Module):
    """One linear map from label embeddings to decoder channels per conditioned decoder input; with `owned`
    (copies of a VQ's post_quant_conv and decoder), the decoder the map draws with, apart from Janus' own."""

    def __init__(self, width: int, channels: Sequence[int], owned: tuple[nn.Module, nn.Module] | None = None) -> None:
        super().__init__()
        self.levels = nn.ModuleList(nn.Linear(width, c) for c in channels)
        for level in self.levels:
            nn.init.zeros_(level.weight)
            nn.init.zeros_(level.bias)
        if owned is not None:
            self.post_quant_conv, self.decoder = owned

    @property
    def owns_decoder(self) -> bool:
        return hasattr(self, "decoder")

    def forward(self, level: int, labels: torch.Tensor, boxes: torch.Tensor, grid: int) -> torch.Tensor:
        """Labels (B, O, D) and normalised boxes (B, O, 4) (padding objects: zero boxes) → (B, C, grid, grid)."""
        cover = box_cover(boxes.float(), grid).to(labels.dtype)  # (B, O, grid²), x varies fastest
        features = self.levels[level](labels)  # (B, O, C)
        mapped = torch.einsum("bon,boc->bcn", cover, features)
        return mapped.reshape(mapped.shape[0], mapped.shape[1], grid, grid)


def conditioned_inputs(vq: JanusVQVAE) -> list[int]:
    """Channels of the decoder inputs the map feeds: the middle block, then each up level (coarse to fine)."""
    decoder = vq.decoder
    return [decoder.mid.block_1.in_channels] + [up.block[0].in_channels for up in decoder.up]


def attach(model: JanusForConditionalGeneration) -> DecoderMap | None:
    """Build the model's decoder map if its config asks for one (and it is not there yet); return it."""
    spec = getattr(model.config, "decoder_map", None)
    vq = model.model.vqmodel
    if not spec:
        return None
    if getattr(vq, "decoder_map", None) is None:
        channels = [int(c) for c in spec["channels"]]
        if channels != conditioned_inputs(vq):
            raise ValueError(f"decoder_map channels {channels} do not fit this VQ decoder ({conditioned_inputs(vq)})")
        width = model.config.text_config.hidden_size
        weight = vq.post_quant_conv.weight
        owned = (copy.deepcopy(vq.post_quant_conv), copy.deepcopy(vq.decoder)) if spec.get("decoder") else None
        vq.decoder_map = DecoderMap(width, channels, owned).to(weight.device, weight.dtype)
    return vq.decoder_map


def separate(model: JanusForConditionalGeneration, plain: JanusVQVAE) -> None:
    """Give the decoder map the decoder it was trained with as its own, and Janus' decoder `plain`'s weights:
    a decoder of the same codebook that reads codes only (ValueError when the model has no map, its map owns
    a decoder already, or `plain` reads another codebook)."""
    vq = model.model.vqmodel
    condition = getattr(vq, "decoder_map", None)
    if condition is None or condition.owns_decoder:
        raise ValueError("the model has no decoder map sharing Janus' decoder to separate it from")
    if not torch.equal(plain.quantize.embedding.weight.float(), vq.quantize.embedding.weight.float()):
        raise ValueError("the plain decoder's VQ has another codebook: its decoder cannot read these codes")
    condition.post_quant_conv, condition.decoder = vq.post_quant_conv, vq.decoder
    weight = vq.post_quant_conv.weight
    vq.post_quant_conv = copy.deepcopy(plain.post_quant_conv).to(weight.device, weight.dtype)
    vq.decoder = copy.deepcopy(plain.decoder).to(weight.device, weight.dtype)
    model.config.decoder_map = {**model.config.decoder_map, "decoder": True}


def load(model: JanusForConditionalGeneration, weights: Path) -> None:
    """Build the decoder map a loaded model's config asks for and read its weights from the safetensors file
    (ValueError naming what is missing)."""
    condition = attach(model)
    if condition is not None:
        checkpoint.load_module_weights(condition, "model.vqmodel.decoder_map.", weights, "a decoder map")


def enable(model: JanusForConditionalGeneration) -> DecoderMap:
    """Switch the decoder map on (for a model about to be trained with it; saved in config.json and the weights);
    a map already there keeps its own decoder if it has one."""
    vq = model.model.vqmodel
    owned = getattr(getattr(vq, "decoder_map", None), "owns_decoder", False)
    model.config.decoder_map = {"channels": conditioned_inputs(vq), **({"decoder": True} if owned else {})}
    return attach(model)


def decode(
    vq: JanusVQVAE, latent: torch.Tensor, labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None
) -> torch.Tensor:
    """Latents (B, C, h, w) → pixels (B, 3, S, S). Given the layout's objects (labels (B, O, D), boxes
    (B, O, 4)) and a VQ with a decoder map, the map's decoder draws them, fed to every scale; without a map or
    without `labels`, Janus' decoder draws the codes alone."""
    condition = getattr(vq, "decoder_map", None)
    if condition is None or labels is None:
        return vq.decoder(vq.post_quant_conv(latent))
    source = condition if condition.owns_decoder else vq
    hidden = source.post_quant_conv(latent)
    decoder = source.decoder
    if labels.shape[1] == 0:
        return decoder(hidden)
    labels = labels.to(hidden.dtype)
    hidden = decoder.conv_in(hidden)
    hidden = decoder.mid(hidden + condition(0, labels, boxes, hidden.shape[-1]))
    for i_level, up in enumerate(decoder.up):
        hidden = hidden + condition(i_level + 1, labels, boxes, hidden.shape[-1])
        for i_block, block in enumerate(up.block):
            hidden = block(hidden)
            if len(up.attn) > 0:
                hidden = up.attn[i_block](hidden)
        if i_level != len(decoder.up) - 1:
            hidden = up.upsample(hidden)
    hidden = decoder.norm_out(hidden)
    hidden = hidden * torch.sigmoid(hidden)
    return decoder.conv_out(hidden)
