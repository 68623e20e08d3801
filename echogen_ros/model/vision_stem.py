"""A convolutional stem beside the vision encoder's patch embedding (an EchoGen option, off in Janus:
`config.vision_stem`).

Janus' encoder (SigLIP's) embeds each patch by one linear map of its pixels. At 128 px a small object is a few
pixels inside one 16 px patch: a linear probe of the encoder's feature at a small object's centre names its
category about 75 % of the time, where a small convolutional classifier on the same pixels names 93 % (at 256 px:
97 %; docs/benchmarks.md, session 18, `experiments.pixel_ceiling`). The stem gives the encoder a nonlinear look
at the pixels without changing its token grid: 3 × 3 convolutions of stride 2 with GELU between them, one per
halving of the patch side, the last one to the encoder's width, whose output is added to the patch embedding
(the early convolutions of Xiao et al. 2021, beside the patchify instead of replacing it).

The stem's last convolution starts at zero, so a model given a stem computes exactly what it did until
training moves it. The module lives on the patch embedding (`vision_model.embeddings.patch_embedding.stem`,
saved with the weights) and a forward hook on that convolution adds it; `config.vision_stem`
({"channels": [...]}, the hidden convolutions' widths) says that it exists, so `attach` rebuilds it when a
model directory is loaded. Copies of the encoder (`copy.deepcopy`) carry the stem and its hook along.

Measured (session 18): trained with the encoder alone against a fixed language model, a stem moved neither
grounding nor the probe beyond a standard error, at 128 px or at 256 px; it is a tool for a run that trains the
whole model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import JanusForConditionalGeneration

from echogen_ros.model import checkpoint

CONFIG_KEY = "vision_stem"
WEIGHT_PREFIX = "model.vision_model.embeddings.patch_embedding.stem."


def halvings(patch: int) -> int:
    """How many stride-2 convolutions take a frame to the patch grid (ValueError unless `patch` is 2**k, k ≥ 1)."""
    steps = round(math.log2(patch)) if patch > 0 else 0
    if steps < 1 or 2**steps != patch:
        raise ValueError(f"a vision stem needs a patch side that is a power of two (≥ 2), got {patch}")
    return steps


def default_channels(patch: int) -> list[int]:
    """Hidden widths for a stem of `patch`: 32 doubling per halving, capped at 256."""
    return [min(256, 32 * 2**k) for k in range(halvings(patch) - 1)]


class VisionStem(nn.Module):
    """Pixels (B, 3, S, S) → (B, width, S / patch, S / patch); zero at initialisation."""

    def __init__(self, patch: int, width: int, channels: Sequence[int]) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if len(channels) != halvings(patch) - 1 or min(channels, default=1) < 1:
            raise ValueError(f"a {patch} px patch needs {halvings(patch) - 1} positive hidden widths, got {channels}")
        layers: list[nn.Module] = []
        previous = 3
        for width_in in channels:
            layers += [nn.Conv2d(previous, width_in, 3, stride=2, padding=1), nn.GELU()]
            previous = width_in
        last = nn.Conv2d(previous, width, 3, stride=2, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net(pixels)


def add_stem(module: nn.Conv2d, args: tuple, output: torch.Tensor) -> torch.Tensor:
    """Forward hook of the patch embedding: its output plus its stem's (the module is the hook's argument, so a
    copied encoder's hook reads the copy's stem)."""
    return output + module.stem(args[0]).to(output.dtype)


def stem_of(model: JanusForConditionalGeneration) -> VisionStem | None:
    return getattr(model.model.vision_model.embeddings.patch_embedding, "stem", None)


def attach(model: JanusForConditionalGeneration) -> VisionStem | None:
    """Build the stem the model's config asks for (when it is not there yet) and hook it; return it."""
    spec = getattr(model.config, CONFIG_KEY, None)
    if not spec:
        return None
    conv = model.model.vision_model.embeddings.patch_embedding
    if getattr(conv, "stem", None) is None:
        patch, width = conv.kernel_size[0], conv.out_channels
        conv.stem = VisionStem(patch, width, spec["channels"]).to(conv.weight.device, conv.weight.dtype)
    if not any(hook is add_stem for hook in conv._forward_hooks.values()):
        conv.register_forward_hook(add_stem)
    return conv.stem


def enable(model: JanusForConditionalGeneration, channels: Sequence[int] | None = None) -> VisionStem:
    """Give `model` a stem (zero at first: the model computes what it did), recorded in its config; ValueError
    when it has one already."""
    if stem_of(model) is not None or getattr(model.config, CONFIG_KEY, None):
        raise ValueError("the model has a vision stem already")
    patch = model.model.vision_model.embeddings.patch_embedding.kernel_size[0]
    setattr(model.config, CONFIG_KEY, {"channels": list(channels or default_channels(patch))})
    return attach(model)


def copy_spec(donor: JanusForConditionalGeneration, model: JanusForConditionalGeneration) -> None:
    """Record in `model`'s config whether `donor`'s encoder, copied into `model`, has a stem (and which)."""
    spec = getattr(donor.config, CONFIG_KEY, None)
    if spec:
        setattr(model.config, CONFIG_KEY, {"channels": list(spec["channels"])})
    elif hasattr(model.config, CONFIG_KEY):
        delattr(model.config, CONFIG_KEY)


def load(model: JanusForConditionalGeneration, weights: Path) -> None:
    """Build the stem a loaded model's config asks for and read its weights (ValueError naming what is missing)."""
    stem = attach(model)
    if stem is not None:
        checkpoint.load_module_weights(stem, WEIGHT_PREFIX, weights, "a vision stem")
