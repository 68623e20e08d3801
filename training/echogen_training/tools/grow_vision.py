"""Grow a trained model's vision encoder without changing what the language model reads: `--factor` × the input
pixels on the same patch grid, `--layers` more encoder layers that start as the identity, and/or `--stem`, a
convolutional stem beside the patch embedding that starts at zero (`echogen_ros.model.vision_stem`).

The patch embedding (a convolution of kernel = stride = the patch) becomes one of `factor` × the kernel whose
every weight is the old weight it covers divided by factor²: on a frame letterboxed to the new size it computes
exactly what the old one computed on that frame averaged over factor × factor pixel blocks. A new layer is a copy
of the last one with its attention's output projection and its MLP's second linear map zeroed: each adds nothing
to the residual stream until training moves it, so the encoder computes what it did. So the grown model grounds
as before (up to the difference between block averages and the letterbox's own resampling), and training on
(`model.vision_only=true`) lets its encoder use the detail small objects had lost (at 128 px a small object is
about half a 16 px patch) or the capacity to tell them apart (docs/benchmarks.md, 2026-12-07). The position
embeddings, the old layers and everything after the encoder are unchanged; the out-of-domain check and the
calibration belong to the old encoder, so the output has neither (run `fit-domain` and `calibrate` after training).

    echogen-train grow-vision MODEL --out DIR [--factor 2] [--layers 0] [--stem] [--overwrite]

The output is a full model directory, written all at once; the manifest records the growth under
`training.vision_growth` (also vision_growth.json beside it); MODEL is not modified.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch

from echogen_ros.model import vision_stem
from echogen_ros.model.echogen import EchoGen
from echogen_training import transplants

MAX_FACTOR = 4  # 128 px → 512 px: beyond it a patch is a 64 px convolution
MAX_LAYERS = 8  # the tabletop encoder's 4 layers grown to at most 12


def check_growth(factor: int, layers: int = 0, stem: bool = False) -> None:
    if not 1 <= factor <= MAX_FACTOR:
        raise ValueError(f"--factor must be 1 to {MAX_FACTOR}, got {factor}")
    if not 0 <= layers <= MAX_LAYERS:
        raise ValueError(f"--layers must be 0 to {MAX_LAYERS}, got {layers}")
    if factor == 1 and layers == 0 and not stem:
        raise ValueError(f"nothing to grow: give --factor 2 to {MAX_FACTOR}, --layers 1 to {MAX_LAYERS} or --stem")


def grow(model: EchoGen, factor: int, layers: int = 0, stem: bool = False) -> dict:
    """`model`'s encoder grown in place (`factor` × the input's side, `layers` more layers, a stem beside the
    patch embedding, in that order); returns the record."""
    check_growth(factor, layers, stem)
    if factor > 1 and vision_stem.stem_of(model.model) is not None:
        raise ValueError("the model has a vision stem: widen a model before giving it one")
    record = widen(model, factor) if factor > 1 else {"factor": 1}
    if layers:
        record = {**record, **deepen(model, layers)}
    if stem:
        vision_stem.enable(model.model)
        record["stem"] = model.model.config.vision_stem
    return record


def widen(model: EchoGen, factor: int) -> dict:
    """Replace `model`'s patch embedding by its `factor` × larger equivalent (in place)."""
    embeddings = model.model.model.vision_model.embeddings
    old = embeddings.patch_embedding
    patch = old.kernel_size[0]
    new = torch.nn.Conv2d(
        old.in_channels, old.out_channels, patch * factor, stride=patch * factor, bias=old.bias is not None
    )
    with torch.no_grad():
        weight = old.weight.float().repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)
        new.weight.copy_(weight / factor**2)
        if old.bias is not None:
            new.bias.copy_(old.bias.float())
    embeddings.patch_embedding = new.to(old.weight.dtype)
    vision = model.model.config.vision_config
    sizes = (vision.image_size, vision.image_size * factor)
    vision.image_size = embeddings.image_size = sizes[1]
    vision.patch_size = embeddings.patch_size = patch * factor
    model.vision_size = sizes[1]
    model.manifest = {**model.manifest, "vision_size": sizes[1]}  # `save` drops the domain check and calibration
    return {"factor": factor, "vision_size": list(sizes), "patch": [patch, patch * factor]}


def deepen(model: EchoGen, layers: int) -> dict:
    """Append `layers` encoder layers to `model` (in place), each the last layer with its two residual outputs
    (the attention's output projection, the MLP's second map) zeroed: the identity until trained."""
    encoder = model.model.model.vision_model.encoder
    vision = model.model.config.vision_config
    depth = len(encoder.layers)
    for _ in range(layers):
        layer = copy.deepcopy(encoder.layers[depth - 1])
        with torch.no_grad():
            for output in (layer.self_attn.projection_layer, layer.mlp.fc2):
                output.weight.zero_()
                if output.bias is not None:
                    output.bias.zero_()
        encoder.layers.append(layer)
    vision.num_hidden_layers = depth + layers
    return {"layers": [depth, depth + layers]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the trained model whose encoder grows")
    parser.add_argument("--out", type=Path, required=True, help="the new model directory")
    parser.add_argument("--factor", type=int, default=2, help=f"how many times the input's side (1 to {MAX_FACTOR})")
    parser.add_argument("--layers", type=int, default=0, help=f"encoder layers to add (0 to {MAX_LAYERS})")
    parser.add_argument("--stem", action="store_true", help="add a convolutional stem beside the patch embedding")
    parser.add_argument("--overwrite", action="store_true", help="replace an --out this tool wrote before")


def run(args: argparse.Namespace) -> int:
    check_growth(args.factor, args.layers, args.stem)  # before the model is loaded
    transplants.check_out(args.out, args.overwrite, args.model)
    model = EchoGen.load(args.model)
    record = grow(model, args.factor, args.layers, args.stem)
    record = transplants.save(model, args.model, model, args.model, args.out, "vision_growth", record, args.overwrite)
    print(json.dumps(record))
    return 0
