"""How much of an object's category the pixels a model reads still hold: a small convolutional classifier,
trained on windows around the objects of frames letterboxed to `--sizes` pixels (the grounder reads 128),
scored on held-out scenes by object scale band.

A grounder cannot name a category its input no longer shows. The world renders 640 × 480 frames; at 128 px
a ball drawn × 0.5–0.7 is 4–5 pixels wide. This measures, with no EchoGen weights, how well a small learner
tells the categories apart from those pixels when it is told where each object is (what they hold, at least), so
a grounding figure on small objects can be read against what its input allows.

Training scenes come from the held-out split of another seed (every colour × category pair, objects at any
size × 0.5–1.6), so the classifier is not taught that a colour means a category; scored on seed 7's
held-out split drawn at each band, split into seen and held-out pairs. Each window is the square of a
quarter of the frame's width around the object's box centre, taken from the letterboxed frame (the same
`Letterbox` the model reads through), so a window holds what four of the grounder's 16 px patches hold.

    python -m experiments.pixel_ceiling [--sizes 128 256] [--train-scenes 3000] [--test-scenes 150]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from torch import nn

from echogen_ros.evaluation.world_sets import SCALE_BANDS
from echogen_ros.model.letterbox import Letterbox
from echogen_ros.world import catalog
from echogen_ros.world.dataset import world_sample
from echogen_ros.world.scene import SceneConfig

TRAIN_SCALE = (0.5, 1.6)
TRAIN_SEED = 101  # held-out split scenes no evaluation reads (evaluations use 7, 20261205, 20261206)
WINDOW = 0.25  # of the letterboxed frame's side


def windows(size: int, split: str, seed: int, scenes: int, scale: tuple[float, float]):
    """(objects, 3, w, w) float windows of the frames letterboxed to `size`, (objects,) category ids, (objects,)
    held-out pair flags."""
    side = max(8, round(WINDOW * size))
    half = side // 2
    crops, labels, heldout = [], [], []
    for index in range(scenes):
        sample = world_sample(seed, index, split, SceneConfig(scale_range=scale))
        image = sample.image()
        box = Letterbox(image.shape[1], image.shape[0], size)
        frame = np.pad(box.apply(image), ((half, half), (half, half), (0, 0)), mode="edge")
        for obj, xyxy in zip(sample.scene.objects, sample.boxes()):
            x0, y0, x1, y1 = box.to_model(xyxy)
            cx, cy = round((x0 + x1) / 2) + half, round((y0 + y1) / 2) + half
            crops.append(frame[cy - half : cy - half + side, cx - half : cx - half + side])
            labels.append(catalog.CATEGORIES.index(obj.category))
            heldout.append(catalog.is_heldout_pair(obj.colour, obj.category))
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x, torch.tensor(labels), torch.tensor(heldout)


def classifier(classes: int, size: int) -> nn.Module:
    """Three 3 × 3 convolutions (the last two strided), pooled over the window: what a few pixels' shape says.
    A frame larger than 128 px first goes through one strided 3 × 3 convolution per doubling, so every size's
    classifier reads its window at the same grid, with more pixels behind each cell."""
    front, channels = [], 3
    for _ in range(max(0, round(np.log2(size / 128)))):
        front += [nn.Conv2d(channels, 32, 3, stride=2, padding=1), nn.GELU()]
        channels = 32
    return nn.Sequential(
        *front,
        nn.Conv2d(channels, 48, 3, padding=1), nn.GELU(),
        nn.Conv2d(48, 96, 3, stride=2, padding=1), nn.GELU(),
        nn.Conv2d(96, 128, 3, stride=2, padding=1), nn.GELU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, classes),
    )  # fmt: skip


def train(x: torch.Tensor, y: torch.Tensor, classes: int, size: int, epochs: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = classifier(classes, size)
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * ((len(x) + 127) // 128)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 128):
            batch = order[start : start + 128]
            flip = torch.rand(len(batch), generator=generator) < 0.5  # the world's objects are left-right symmetric
            inputs = torch.where(flip[:, None, None, None], x[batch].flip(-1), x[batch])
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(inputs), y[batch]).backward()
            optimizer.step()
            schedule.step()
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="letterbox sides (pixels)")
    parser.add_argument("--train-scenes", type=int, default=3000)
    parser.add_argument("--test-scenes", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=7, help="seed of the held-out scenes scored")
    args = parser.parse_args(argv)
    if min(args.sizes) < 32 or args.train_scenes < 1 or args.test_scenes < 1 or args.epochs < 1:
        parser.error("--sizes must be >= 32, --train-scenes, --test-scenes and --epochs >= 1")
    report = {"train": {"split": "heldout", "seed": TRAIN_SEED, "scenes": args.train_scenes, "scale": TRAIN_SCALE},
              "test": {"split": "heldout", "seed": args.seed, "scenes": args.test_scenes}, "sizes": {}}  # fmt: skip
    classes = len(catalog.CATEGORIES)
    for size in args.sizes:
        x, y, _ = windows(size, "heldout", TRAIN_SEED, args.train_scenes, TRAIN_SCALE)
        net = train(x, y, classes, size, args.epochs)
        row = {"objects": len(x)}
        for lo, hi in SCALE_BANDS:
            xt, yt, held = windows(size, "heldout", args.seed, args.test_scenes, (lo, hi))
            with torch.no_grad():
                hit = (net(xt).argmax(-1) == yt).float()
            share = {"all": hit, "seen_pairs": hit[~held], "heldout_pairs": hit[held]}
            row[f"{lo:g}-{hi:g}"] = {**{k: round(float(v.mean()), 4) for k, v in share.items()}, "objects": len(hit)}
        report["sizes"][str(size)] = row
        print(json.dumps({str(size): row}), file=sys.stderr)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
