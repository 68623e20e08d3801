"""Grounding accuracy by sub-bin refinement window: how far from the chosen bin `generation.refine` may
look when it turns bin probabilities into a coordinate (0 = the chosen bin's centre, as decoding did
before refinement; the bins count gives the full mean). One JSON line per window, on an export written by
`echogen world`. Choose the window on a split of seen compositions (test), then report held-out.

    python -m experiments.refine_sweep MODEL DATA [--windows 0 1 2 4 8 128] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.layout import box_iou
from echogen_ros.model.metrics import grounding_accuracy
from experiments.world_export import read_scenes


def sweep(model: EchoGen, directory: Path, windows: list[int], limit: int = 0) -> list[dict]:
    """Per window: Acc@0.5 / 0.75 / 0.9 and mAcc over every referring expression of the export."""
    ious: dict[int, list[float]] = {w: [] for w in windows}
    for scene in read_scenes(directory, limit):
        if not scene.expressions:
            continue
        array, ids, mask, letterbox = model.grounding_inputs(scene.image(), [t for _, t in scene.expressions])
        for window in windows:
            _, _, coords, _ = model.decode_grounding(array, ids, mask, window)
            for (target, text), row in zip(scene.expressions, coords.tolist()):
                ious[window].append(box_iou(scene.box(target), model.detection(letterbox, row, 1.0, text).box))
    return [{"window": w, **grounding_accuracy(ious[w])} for w in windows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path, help="a directory written by `echogen world`")
    parser.add_argument("--windows", type=int, nargs="+", default=[0, 1, 2, 4, 8, 128])
    parser.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    args = parser.parse_args(argv)
    if any(w < 0 for w in args.windows) or args.limit < 0:
        print("error: windows and --limit must be >= 0", file=sys.stderr)
        return 2
    try:
        model = EchoGen.load(args.model)
        with torch.inference_mode():
            for row in sweep(model, args.data, args.windows, args.limit):
                print(json.dumps(row), flush=True)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
