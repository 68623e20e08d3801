"""Give a trained model another vision encoder: the donor's encoder replaces the model's, and an aligner is
fitted so that the new encoder's features land where the model's language model expects its old ones.

The use: a vision stage re-run with better pre-training (say `vision.recolour=0.8`, whose features tell
categories apart in hues the data never paired them with) is worth having under a model whose language
model has already learned to ground and to generate. Swapping the encoder alone would leave the language
model reading features it has never seen; instead the donor's aligner (its starting point) is trained to
reproduce the old encoder + aligner's outputs, patch by patch, on train-split world frames (mean squared
error, donor encoder frozen). Continue with PMTP (`model.freeze_vision=true` keeps the transplant) to let
grounding adapt the rest of the way.

    echogen-train transplant-vision MODEL DONOR --out DIR [--steps 600] [--batch 32] [--lr 1e-3]

The output is a full model directory, written all at once (the manifest records the donor and the fit under
`training.vision_transplant`, also written to vision_transplant.json beside it); MODEL and DONOR are not
modified; an --out that is not empty is refused (with --overwrite, one this tool wrote is replaced), and so is
an --out that is MODEL or DONOR.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from echogen_ros.model import vision_stem
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.letterbox import Letterbox
from echogen_training import transplants
from echogen_training.config import DataConfig
from echogen_training.data.batches import to_pixels
from echogen_training.data.sources import build_stream


def compatible(model: EchoGen, donor: EchoGen) -> None:
    """Refuse a donor whose features could not stand in for the model's: its encoder must give as many
    image tokens as the model's language model reads, as wide as its embeddings. The input size may differ
    (a 256 px encoder through 32 px patches under a model trained on 128 px through 16 px: 8 × 8 tokens)."""
    vision = donor.model.config.vision_config
    checks = {
        "encoder's image tokens": ((vision.image_size // vision.patch_size) ** 2, model.scheme.image_tokens),
        "aligner's output width": (vision.projection_dim, model.model.config.text_config.hidden_size),
    }
    for what, (theirs, mine) in checks.items():
        if mine != theirs:
            raise ValueError(f"the donor's {what} is {theirs}, the model needs {mine}: not interchangeable")


def frames(sizes: tuple[int, ...], seed: int, batch: int):
    """Endless batches of train-split world frames letterboxed to each of `sizes`: one (B, 3, S, S) tensor in
    [-1, 1] per size, the same frames in each."""
    stream = build_stream(DataConfig(source="world", split="train", seed=seed))
    while True:
        records = stream.take(batch)
        yield [to_pixels([Letterbox(r.width, r.height, size).apply(r.load_image()) for r in records]) for size in sizes]


def transplant(model: EchoGen, donor: EchoGen, steps: int, batch: int, lr: float, seed: int = 0) -> dict:
    """Replace `model`'s encoder by `donor`'s and fit the aligner to the old features; returns the fit record."""
    if steps < 1:
        raise ValueError(f"the aligner needs at least one fitting step, got {steps}")
    compatible(model, donor)
    janus = model.model.model
    old_vision = janus.vision_model.requires_grad_(False).eval()  # the teacher: what the LM learned to read
    old_aligner = janus.aligner.requires_grad_(False).eval()
    janus.vision_model = copy.deepcopy(donor.model.model.vision_model).to(model.dtype)
    janus.aligner = copy.deepcopy(donor.model.model.aligner).float()
    model.model.config.vision_config = copy.deepcopy(donor.model.config.vision_config)
    vision_stem.copy_spec(donor.model, model.model)  # a stem on the donor's encoder came with it
    sizes = (model.vision_size, donor.vision_size)
    model.vision_size = donor.vision_size
    model.manifest = {**model.manifest, "vision_size": donor.vision_size}
    janus.vision_model.requires_grad_(False).eval()
    aligner = janus.aligner.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(aligner.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps), eta_min=lr * 0.1)
    torch.manual_seed(seed)
    source, start, first, last = frames(sizes, seed, batch), time.monotonic(), None, None
    for step in range(steps):
        old_pixels, new_pixels = (p.to(model.dtype) for p in next(source))
        with torch.no_grad():
            target = old_aligner(old_vision(old_pixels).last_hidden_state).float()
            hidden = janus.vision_model(new_pixels).last_hidden_state.float()
        # relative error: the share of the old features' energy the new ones miss
        loss = (aligner(hidden) - target).pow(2).sum(-1).mean() / target.pow(2).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        first = loss.item() if first is None else first
        last = loss.item()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step + 1}/{steps}  relative error {last:.4f}", file=sys.stderr, flush=True)
    janus.aligner.to(model.dtype)
    model.model.eval()
    return {"steps": steps, "batch": batch, "lr": lr, "seed": seed, "vision_size": list(sizes),
            "relative_error_first": round(first, 4), "relative_error_last": round(last, 4),
            "wall_s": round(time.monotonic() - start, 2)}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the trained model whose language model is kept")
    parser.add_argument("donor", type=Path, help="the model whose vision encoder is taken (a vision-stage run)")
    parser.add_argument("--out", type=Path, required=True, help="the new model directory")
    parser.add_argument("--overwrite", action="store_true", help="replace an --out this tool wrote before")
    parser.add_argument("--steps", type=int, default=600, help="aligner fitting steps (≥ 1)")
    parser.add_argument("--batch", type=int, default=32, help="world frames per step (≥ 1)")
    parser.add_argument("--lr", type=float, default=1e-3, help="the aligner's learning rate (> 0)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if args.steps < 1 or args.batch < 1 or not args.lr > 0:
        raise ValueError("--steps and --batch must be ≥ 1 and --lr > 0")
    transplants.check_out(args.out, args.overwrite, args.model, args.donor)
    model, donor = EchoGen.load(args.model), EchoGen.load(args.donor)
    record = transplant(model, donor, args.steps, args.batch, args.lr, args.seed)
    stage = "vision_transplant"
    record = transplants.save(model, args.model, donor, args.donor, args.out, stage, record, args.overwrite)
    print(json.dumps(record))
    return 0
