"""`echogen demo`: show the tabletop world with its referring expressions drawn on the scenes."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from echogen_ros.cli.args import bounded_int
from echogen_ros.overlay import draw_boxes
from echogen_ros.world.dataset import world_sample


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="render tabletop scenes with their expressions (no ROS needed)")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="where to write the PNGs")
    p.add_argument("--count", type=bounded_int(1, 100), default=4)
    p.add_argument("--seed", type=bounded_int(0, 2**63 - 1), default=0)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    for index in range(args.count):
        sample = world_sample(args.seed, index, "val")
        boxes = sample.boxes()
        # one expression per object, the most informative kind available
        chosen = {}
        for expr in sorted(sample.expressions, key=lambda e: e.kind != "relation"):
            chosen.setdefault(expr.target, expr.text)
        targets = sorted(chosen)
        image = draw_boxes(sample.image(), [boxes[t] for t in targets], [chosen[t] for t in targets])
        path = args.out / f"scene_{index:03d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        print(f"{path}: {sample.caption}")
        for ins in sample.instructions:
            print(f"    instruction: {ins.text}")
    print(f"wrote {args.count} annotated scenes to {args.out}/")
    return 0
