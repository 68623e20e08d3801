"""How far the imagined-scene metrics can go with this model's image path, measured on real frames.

Layout AP50 and the cycle IoU grade imagined scenes, which are generated at the model's resolution
(`image_size`, 64 px for `tabletop`) as VQ tokens and scaled back up. This script sends held-out camera frames
along the same path without the generator, so each row is an upper bound on what a perfect generator
could score through that step:

- `frame`: the rendered frame as it is;
- `resized`: letterboxed down to the model's resolution and scaled back up as imagined scenes are;
- `latent`: the same through the VQ-VAE's encoder and decoder without choosing codes (what the autoencoder
  keeps; the gap to `vq` is what the codebook loses);
- `vq`: the same, through the VQ tokenizer (encode → nearest codes → decode), i.e. the best token sequence.
- `map_only`, for a model whose decoder reads the layout (`model.decoder_map`): the codes of another scene
  (the next one) drawn with this scene's layout, graded against this scene: what the decoder draws from the
  layout alone, without codes that show it (a decoder that ignored its codes would score as `vq` here).

A decoder map reads each scene's true layout in the `latent`, `vq` and `map_only` rows, as it reads the
layout an imagined scene is asked for.

For each row: the classical detector's COCO AP / AP50 / AP75 against the frame's true boxes (what
`echogen eval` reports as layout AP), AP50 with categories ignored (an object is found where one stands,
whatever kind the detector takes it for: the gap to AP50 is objects drawn too poorly to tell their kind), the
kinds it took them for (`confusions`: "cup → ball" counts, each true box matched to the detection that
overlaps it most, "missed" below IoU 0.5), and the cycle: every object's label grounded by the model in that
image, mean IoU with its true box and the failure rate (IoU < 0.5). The `latent` and `vq` rows also give the
reconstruction's PSNR against `resized` (`psnr_db`: what the VQ-VAE was given, both at the frame's size).

    python -m experiments.vq_ceiling MODEL --data runs/heldout [--scenes 60] [--json] [--crops FILE]

To see what another image size allows, read the model's VQ at that size first (`echogen-train
transplant-tokenizer MODEL MODEL --image-size 128 --out DIR`) and measure DIR.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import torch
from echogen_training.data.batches import to_pixels
from echogen_training.evaluate import psnr

from echogen_ros.evaluation.detector import detect
from echogen_ros.evaluation.layout_ap import layout_ap
from echogen_ros.evaluation.run import FAILURE_IOU
from echogen_ros.model import vq
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.generation import decode_image, label_boxes
from echogen_ros.model.layout import Layout, box_iou
from echogen_ros.model.letterbox import Letterbox
from experiments.world_export import read_scenes

ROWS = ("frame", "resized", "latent", "vq")
CONTROL = "map_only"  # the row of models with a decoder map
DECODED = ("latent", "vq")  # the rows with a reconstruction PSNR (against `resized`: what the VQ-VAE was given)
SHOWN_CONFUSIONS = 4  # the most frequent, in the table
MAX_CROPS, CROP_SIDE = 12, 96


@torch.no_grad()
def versions(
    model: EchoGen, frame: np.ndarray, layout: Layout, other: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The frame as each row sees it, every one at the frame's own size; a decoder map (`layout_decoder`) reads
    the frame's true layout, as it reads the layout an imagined scene is asked for. With `other` (another
    scene's frame, any size) and a decoder map, also the `map_only` row: `other`'s codes drawn with `layout`."""
    box = Letterbox(frame.shape[1], frame.shape[0], model.image_size)
    small = box.apply(frame)
    vqmodel = model.model.model.vqmodel
    dtype = next(vqmodel.parameters()).dtype
    raw = vq.encode_latent(vqmodel, to_pixels([small]).to(model.device, dtype))  # once for both rows
    objects = [model.layout_objects(layout)]
    decoded = decode_image(model.model, vq.quantize_latent(vqmodel, raw)[0], objects)[0].cpu().numpy()
    latent = vq.decode_latent(vqmodel, raw, *label_boxes(model.model, objects))[0].permute(1, 2, 0).float()
    latent = ((latent.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    rows = {"frame": frame, "resized": box.crop(small), "latent": box.crop(latent), "vq": box.crop(decoded)}
    if other is not None and getattr(vqmodel, "decoder_map", None) is not None:
        theirs = Letterbox(other.shape[1], other.shape[0], model.image_size).apply(other)
        codes = vq.encode_tokens(vqmodel, to_pixels([theirs]).to(model.device, dtype))
        rows[CONTROL] = box.crop(decode_image(model.model, codes, objects)[0].cpu().numpy())
    return rows


def taken_for(box: tuple, found: list) -> str:
    """The category of the detection that overlaps `box` most, or 'missed' when none does by IoU 0.5."""
    ious = [box_iou(box, f.box) for f in found]
    best = int(np.argmax(ious)) if ious else -1
    return found[best].category if ious and ious[best] >= FAILURE_IOU else "missed"


def confusions(truth: list[tuple[str, tuple]], found: list) -> Counter:
    """'true → detected' category counts of the true boxes taken for another category (`taken_for`)."""
    kinds = ((category, taken_for(box, found)) for category, box in truth)
    return Counter(f"{category} → {kind}" for category, kind in kinds if kind != category)


def strip(rows: dict[str, np.ndarray], box: tuple, side: int = CROP_SIDE) -> np.ndarray:
    """One object seen by every row, side by side: a square around its box with a margin (black beyond the
    frame's edge), each scaled to `side` px."""
    x1, y1, x2, y2 = box
    half = max(x2 - x1, y2 - y1) * 0.6 + 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    pad, size = int(np.ceil(half)) + 1, int(round(2 * half))
    left, top = int(round(cx - half)) + pad, int(round(cy - half)) + pad
    tiles = []
    for picture in rows.values():
        padded = cv2.copyMakeBorder(picture, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        crop = padded[top : top + size, left : left + size]
        tiles.append(cv2.resize(crop, (side, side), interpolation=cv2.INTER_NEAREST))
    return np.concatenate(tiles, axis=1)


def measure(model: EchoGen, directory: Path, scenes: int, crops: list[np.ndarray] | None = None) -> dict:
    """The report; with `crops`, strips (`strip`) of up to MAX_CROPS objects whose kind the vq row loses are
    appended to it."""
    chosen = read_scenes(directory, scenes)
    layouts: list = []
    detections: dict[str, list] = {row: [] for row in ROWS}
    ious: dict[str, list[float]] = {row: [] for row in ROWS}
    confused: dict[str, Counter] = {row: Counter() for row in ROWS}
    squared: dict[str, list[float]] = {row: [] for row in DECODED}  # mean squared error per scene, 0-255 scale
    mapped = getattr(model.model.model.vqmodel, "decoder_map", None) is not None
    rows = (*ROWS, CONTROL) if mapped and len(chosen) > 1 else ROWS
    for k in set(rows) - set(ROWS):
        detections[k], ious[k], confused[k] = [], [], Counter()
    for position, scene in enumerate(chosen):
        objects = scene.objects[: model.max_objects]
        if not objects:
            continue
        frame = scene.image()
        other = chosen[(position + 1) % len(chosen)].image() if CONTROL in rows else None
        boxes = [o.box for o in objects]
        layouts.append([(o.category, o.box) for o in objects])
        layout = scene.layout(model.max_objects)
        pictures = versions(model, frame, layout, other)
        for row in DECODED:
            squared[row].append(float(np.mean((pictures[row].astype(np.float64) - pictures["resized"]) ** 2)))
        for row, picture in pictures.items():
            found = detect(picture)
            detections[row].append([(f.category, f.box, f.score) for f in found])
            confused[row] += confusions(layouts[-1], found)
            if row == "vq" and crops is not None:
                lost = [b for c, b in layouts[-1] if taken_for(b, found) != c][: MAX_CROPS - len(crops)]
                crops += [strip(pictures, b) for b in lost]
            grounded = model.ground_layout(picture, layout)  # as the cycle check grounds back
            ious[row] += [box_iou(b, d.box) for b, d in zip(boxes, grounded)]
    if not layouts:
        raise ValueError(f"no scene with objects among the first {scenes} of {directory}")
    report = {"scenes": len(layouts), "objects": len(ious["frame"]), "image_size": model.image_size}
    for row in rows:
        values = np.array(ious[row])
        report[row] = {
            **layout_ap(layouts, detections[row]),
            "ap50_any_category": layout_ap(layouts, detections[row], by_category=False)["ap50"],
            "cycle_iou": float(values.mean()),
            "cycle_failure_rate": float((values < FAILURE_IOU).mean()),
            "confusions": dict(confused[row].most_common()),
        }
    for row in DECODED:
        report[row]["psnr_db"] = psnr(float(np.mean(squared[row])), peak=255.0)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="a directory written by `echogen world`")
    parser.add_argument("--scenes", type=int, default=60, help="the first N scenes (eval's --imagine-limit)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--crops", type=Path, help=f"write an image of up to {MAX_CROPS} objects whose kind the vq row loses, "
        "one per line: " + " | ".join(ROWS)
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.scenes < 1:
        parser.error("--scenes must be at least 1")
    if args.crops is not None and args.crops.suffix.lower() not in {".png", ".jpg", ".jpeg"}:
        parser.error("--crops must name a .png or .jpg file")
    crops: list[np.ndarray] | None = [] if args.crops is not None else None
    try:
        report = measure(EchoGen.load(args.model), args.data, args.scenes, crops)
    except (FileNotFoundError, ValueError) as error:
        print(f"vq_ceiling: {error}", file=sys.stderr)
        return 2
    if crops is not None and not crops:
        print(f"vq_ceiling: the tokenizer lost no object's kind; {args.crops} not written", file=sys.stderr)
    if crops:
        args.crops.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(args.crops), cv2.cvtColor(np.concatenate(crops, axis=0), cv2.COLOR_RGB2BGR)):
            print(f"vq_ceiling: cannot write {args.crops}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['scenes']} scenes, {report['objects']} objects, model resolution {report['image_size']} px")
    header = f"{'row':<8} {'AP':>6} {'AP50':>6} {'AP75':>6} {'AP50 any':>9} {'cycle IoU':>10} {'failures':>9}"
    print(f"{header} {'PSNR dB':>8}  most confused")
    for row in (*ROWS, CONTROL):
        if row not in report:
            continue
        r = report[row]
        shown = f"{r['psnr_db']:8.2f}" if "psnr_db" in r else f"{'':8}"
        print(
            f"{row:<8} {r['ap']:6.3f} {r['ap50']:6.3f} {r['ap75']:6.3f} {r['ap50_any_category']:9.3f}"
            f" {r['cycle_iou']:10.3f} {r['cycle_failure_rate']:9.3f} {shown}  "
            + ", ".join(f"{k} {n}" for k, n in list(r["confusions"].items())[:SHOWN_CONFUSIONS])
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
