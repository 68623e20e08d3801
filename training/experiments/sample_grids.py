"""Sample grids for docs/benchmarks.md from held-out world scenes (compositions never seen in training):

- grounding.jpg: camera frames with the referring expression's true box and the model's box;
- imagined.jpg: per scene, the real frame | the image EchoGen imagines from its layout (layout drawn on)
  | the boxes grounded back in the imagined image (the cycle check).

    python -m experiments.sample_grids [--model DIR] [--out docs/img] [--scenes 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.layout import Layout, LayoutObject, box_iou
from echogen_ros.overlay import draw_boxes
from echogen_ros.world.dataset import world_sample

TILE = (320, 240)


def tile(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, TILE, interpolation=cv2.INTER_AREA)


def caption(image: np.ndarray, text: str) -> np.ndarray:
    bar = np.zeros((22, image.shape[1], 3), np.uint8)
    cv2.putText(bar, text[:52], (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([bar, image], axis=0)


def _write(path: Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    model = EchoGen.load(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    samples = [world_sample(args.seed, i, "heldout") for i in range(args.scenes * 3)]
    samples = [s for s in samples if s.expressions][: args.scenes * 2]

    tiles = []
    for sample in samples:
        frame, boxes = sample.image(), sample.boxes()
        expression = sample.expressions[0]
        (found,) = model.ground_many(frame, [expression.text])
        iou = box_iou(boxes[expression.target], found.box)
        drawn = draw_boxes(frame, [boxes[expression.target], found.box], ["truth", f"EchoGen IoU {iou:.2f}"])
        tiles.append(caption(tile(drawn), f"{expression.kind}: {expression.text}"))
    rows = [np.concatenate(tiles[i : i + 4], axis=1) for i in range(0, len(tiles) - len(tiles) % 4, 4)]
    _write(args.out / "grounding.jpg", np.concatenate(rows, axis=0))

    rows = []
    for index, sample in enumerate(samples[: args.scenes]):
        frame, boxes = sample.image(), sample.boxes()
        objects = tuple(LayoutObject(f"{o.colour} {o.category}", b) for o, b in zip(sample.scene.objects, boxes))[
            : model.max_objects
        ]
        layout = Layout(frame.shape[1], frame.shape[0], objects, sample.caption)
        result = model.cycle(layout, seed=index)
        labels = [o.label for o in objects]
        real = caption(tile(draw_boxes(frame, [o.box for o in objects], labels)), "camera frame + its layout")
        imagined = caption(tile(draw_boxes(result.image, [o.box for o in objects], labels)), "imagined from the layout")
        back = caption(
            tile(draw_boxes(result.image, [o.box for o in result.grounded.objects], labels)),
            f"grounded back: mean IoU {result.mean_iou:.2f}",
        )
        rows.append(np.concatenate([real, imagined, back], axis=1))
    _write(args.out / "imagined.jpg", np.concatenate(rows, axis=0))
    print(f"wrote {args.out / 'grounding.jpg'} and {args.out / 'imagined.jpg'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
