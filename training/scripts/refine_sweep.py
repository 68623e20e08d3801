"""Grounding accuracy by sub-bin refinement window: how far from the chosen bin `generation.refine` may
look when it turns bin probabilities into a coordinate (0 = the chosen bin's centre, as decoding did
before refinement; the bins count gives the full mean). One JSON line per window, on an export written by
`echogen world`. Choose the window on a split of seen compositions (test), then report held-out.

    python training/scripts/refine_sweep.py MODEL DATA [--windows 0 1 2 4 8 128] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import torch

from echogen_ros.evaluation.run import load_export
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.layout import box_iou
from echogen_ros.model.metrics import grounding_accuracy


def sweep(model: EchoGen, directory: Path, windows: list[int], limit: int = 0) -> list[dict]:
    """Per window: Acc@0.5 / 0.75 / 0.9 and mAcc over every referring expression of the export."""
    data = load_export(directory)
    boxes = {a["id"]: a["bbox"] for a in data["annotations"]}
    refs = defaultdict(list)
    for ref in data["refs"]:
        refs[ref["image_id"]].append(ref)
    ious: dict[int, list[float]] = {w: [] for w in windows}
    for info in data["images"][:limit] if limit else data["images"]:
        image = cv2.imread(str(Path(directory) / "images" / info["file_name"]), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read {info['file_name']} in {directory}/images")
        sentences = [(r["ann_id"], s["sent"]) for r in refs[info["id"]] for s in r["sentences"]]
        if not sentences:
            continue
        array, ids, mask, letterbox = model.grounding_inputs(image[..., ::-1].copy(), [t for _, t in sentences])
        for window in windows:
            _, _, coords = model.decode_grounding(array, ids, mask, window)
            for (ann, text), row in zip(sentences, coords.tolist()):
                x, y, w, h = boxes[ann]
                ious[window].append(box_iou((x, y, x + w, y + h), model.detection(letterbox, row, 1.0, text).box))
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
