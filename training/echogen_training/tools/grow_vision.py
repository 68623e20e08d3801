"""Give a trained model's vision encoder `factor` × the input pixels on the same patch grid: each patch reads
`factor` × `factor` as many pixels, and the language model still reads as many image tokens.

The patch embedding (a convolution of kernel = stride = the patch) becomes one of `factor` × the kernel whose
every weight is the old weight it covers divided by factor²: on a frame letterboxed to the new size it computes
exactly what the old one computed on that frame averaged over factor × factor pixel blocks. So the grown model
grounds as before (up to the difference between block averages and the letterbox's own resampling), and training
on (`model.vision_only=true`) lets its encoder use the detail small objects had lost: at 128 px a small object
is about half a 16 px patch (docs/benchmarks.md, 2026-12-07). The position embeddings, the encoder's layers and
everything after them are unchanged; the out-of-domain check and the calibration belong to the old inputs, so
the output has neither (run `fit-domain` and `calibrate` after training).

    echogen-train grow-vision MODEL --out DIR [--factor 2] [--overwrite]

The output is a full model directory, written all at once; the manifest records the growth under
`training.vision_growth` (also vision_growth.json beside it); MODEL is not modified.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from echogen_ros.model.echogen import EchoGen
from echogen_training import transplants

MAX_FACTOR = 4  # 128 px → 512 px: beyond it a patch is a 64 px convolution


def check_factor(factor: int) -> None:
    if not 2 <= factor <= MAX_FACTOR:
        raise ValueError(f"--factor must be 2 to {MAX_FACTOR}, got {factor}")


def grow(model: EchoGen, factor: int) -> dict:
    """Replace `model`'s patch embedding by its `factor` × larger equivalent (in place); returns the record."""
    check_factor(factor)
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the trained model whose encoder reads more pixels")
    parser.add_argument("--out", type=Path, required=True, help="the new model directory")
    parser.add_argument("--factor", type=int, default=2, help=f"how many times the input's side (2 to {MAX_FACTOR})")
    parser.add_argument("--overwrite", action="store_true", help="replace an --out this tool wrote before")


def run(args: argparse.Namespace) -> int:
    check_factor(args.factor)  # before the model is loaded
    transplants.check_out(args.out, args.overwrite, args.model)
    model = EchoGen.load(args.model)
    record = grow(model, args.factor)
    record = transplants.save(model, args.model, model, args.model, args.out, "vision_growth", record, args.overwrite)
    print(json.dumps(record))
    return 0
