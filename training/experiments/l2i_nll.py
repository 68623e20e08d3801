"""Teacher-forced layout→image token cross-entropy and accuracy on held-out world scenes: how well a model
predicts the VQ tokens of the real frame from its layout (no classifier-free guidance; lower CE is better).
A detector-free L2I measure for comparing checkpoints when the generated images are too weak to detect.
Computed under bf16 autocast, as the models were trained: the VQ encoder's code assignment is not stable
across precisions (on the shipped tokenizer only ~11 % of codes agree between fp32 and bf16).

With `--condition shuffled` every frame is scored under another scene's layout, with `none` under the
empty (classifier-free) prompt: a CE no lower with the right layout than with a shuffled one means the
generator ignores where the layout puts things.

    python -m experiments.l2i_nll MODEL [--scenes 64] [--seed 7] [--split heldout] [--condition right|shuffled|none]
        [--min-objects 2 --max-objects 8 --scale-range 1 1]   (the world drawn: SceneConfig's fields)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from echogen_training.data.batches import Batcher
from echogen_training.data.records import world_record
from echogen_training.forward import l2i_logits, l2i_loss

from echogen_ros.model import vq
from echogen_ros.model.echogen import EchoGen
from echogen_ros.world.scene import SceneConfig


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--scenes", type=int, default=64)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--split", default="heldout")
    parser.add_argument("--min-objects", type=int, default=SceneConfig.min_objects)
    parser.add_argument("--max-objects", type=int, default=SceneConfig.max_objects)
    parser.add_argument("--scale-range", type=float, nargs=2, default=SceneConfig.scale_range, metavar=("LO", "HI"))
    parser.add_argument("--condition", choices=("right", "shuffled", "none"), default="right")
    args = parser.parse_args(argv)
    model = EchoGen.load(args.model)
    batcher = Batcher(model, seed=0)
    batcher.rng = np.random.default_rng(0)
    world = SceneConfig(min_objects=args.min_objects, max_objects=args.max_objects, scale_range=tuple(args.scale_range))
    records = [world_record(args.seed, i, args.split, world, (1.0,)) for i in range(args.scenes)]
    ces, accs = [], []
    for start in range(0, len(records), 16):
        chunk = records[start : start + 16]
        batch = batcher.l2i(chunk, condition_dropout=1.0 if args.condition == "none" else 0.0)
        if args.condition == "shuffled":  # the next scene's layout (and caption) for every frame
            batch.seq = batcher.l2i(chunk[1:] + chunk[:1]).seq
        # as training computes it (bf16 autocast): the VQ code of a patch can flip between fp32 and bf16
        with torch.autocast("cpu", dtype=torch.bfloat16):
            tokens = vq.encode_tokens(model.model.model.vqmodel, batch.gen_pixels)
            ce, acc = l2i_loss(l2i_logits(model.model, batch.seq, tokens), tokens)
        ces.append(float(ce))
        accs.append(float(acc))
    print(json.dumps({"l2i_ce": float(np.mean(ces)), "l2i_acc": float(np.mean(accs)), "scenes": len(records),
                      "condition": args.condition}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
