"""The second look (`finding.look`): what reading a small best box again in a crop around it changes, and which of
its signals the answer should carry. Every expression (with a referent, and no-target) is answered once by the
whole frame and, where the best box is small, once more in the crop (`finding.closer`); each way below gets its
own calibration, fitted as `echogen-train calibrate --compositions N` fits one (val, half the scenes at any size,
and held-out scenes 0..N-1 of seed 7), and is scored on the test split (half at any size) and on seed 7's
held-out scenes N..2N-1 (this project's validation split for compositions), and optionally on the bands of
object scale of the test split:

- "one look": the whole frame's answer (no second look);
- "crop": the crop's box, score and no-target probability;
- "crop, frame's absent": the crop's box and score, the whole frame's no-target probability;
- "crop, larger absent": the crop's box and score, the larger of the two no-target probabilities.

Run from the repository root (about 27 minutes on 2 cores with --band-scenes 30):

    PYTHONPATH=training .venv/bin/python -m experiments.second_look [--model DIR] [--scenes 150]
        [--test-scenes 100] [--compositions 100] [--band-scenes 0] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass, replace

import torch
from echogen_training.tools.calibrate import COMPOSITIONS_SEED

from echogen_ros.evaluation import trust
from echogen_ros.evaluation.world_sets import SCALE_BANDS
from echogen_ros.model import finding
from echogen_ros.model.confidence import Calibration
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.layout import box_iou
from echogen_ros.world.dataset import world_sample
from echogen_ros.world.scene import SceneConfig, scene_config

SHOWN = ("acc@0.5", "found_and_right", "found_but_wrong", "no_target_accuracy", "ece", "auroc")
WAYS = ("one look", "crop", "crop, frame's absent", "crop, larger absent")


@dataclass(frozen=True)
class Answered:
    """One expression's rows, one per way, and the side share of the whole frame's best box."""

    rows: dict[str, trust.Row]
    share: float


@torch.inference_mode()
def answer_both(model: EchoGen, split: str, scenes: int, seed: int, first: int = 0, config=None) -> list[Answered]:
    out = []
    for index in range(first, first + scenes):
        sample = world_sample(seed, index, split, config(index) if callable(config) else config)
        image, boxes = sample.image(), sample.boxes()
        frame = finding.encode(model, image)
        for e in [*sample.expressions, *sample.absent]:
            found, absent = finding.candidates(model, frame.features, frame.letterbox, e.text, 2)
            one = _row(model, frame, e, boxes, found, absent)
            share = finding.side_share(found[0].box, image.shape[:2])
            again = finding.closer(model, image, e.text, found[0].box, 1)
            if again is None:
                out.append(Answered(dict.fromkeys(WAYS, one), share))
                continue
            (best,), crop_absent = again
            crop = _row(model, frame, e, boxes, finding.looked_again(best, found, 2), crop_absent)
            frames = replace(crop, signals=replace(crop.signals, absent=absent))
            larger = replace(crop, signals=replace(crop.signals, absent=max(absent, crop_absent)))
            out.append(Answered({"one look": one, "crop": crop, "crop, frame's absent": frames,
                                 "crop, larger absent": larger}, share))  # fmt: skip
    return out


def _row(model: EchoGen, frame: finding.Encoded, e, boxes, found, absent: float) -> trust.Row:
    """The row of expression `e` answered with `found` (best first) and `absent`, its checks run on the best box."""
    right = e.target is not None and box_iou(found[0].box, boxes[e.target]) >= 0.5
    failed = finding.check_failures(model, frame.image, frame.features, frame.letterbox, e.text, [found[0].box])
    signals = finding.signals(found, absent, frame.image.shape[:2])[0]
    return trust.Row(signals, e.target is not None, right, e.kind, failed[0][0])


def write_rows(path: str, sets: dict[str, list[Answered]]) -> None:
    """Every set's answers, each way, as JSON lines ({"set", "share", "rows": {way: [signals..., present, right,
    kind, failed_check]}}): what `experiments.calibration_variants` and `calibration_sizes` read."""
    with open(path, "w") as out:
        for name, answered in sets.items():
            for a in answered:
                rows = {way: [*dataclasses.astuple(r.signals), r.present, r.right, r.kind, r.failed_check]
                        for way, r in a.rows.items()}  # fmt: skip
                out.write(json.dumps({"set": name, "share": a.share, "rows": rows}) + "\n")


def scored(rows: list[trust.Row], calibration: Calibration) -> dict:
    report = trust.report(rows, calibration)
    return {k: round(report[k], 4) for k in SHOWN}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: the embedded model)")
    parser.add_argument("--scenes", type=int, default=150, help="val scenes to fit on")
    parser.add_argument("--test-scenes", type=int, default=100)
    parser.add_argument("--compositions", type=int, default=100)
    parser.add_argument("--band-scenes", type=int, default=0, help="test scenes per band of object scale (0: none)")
    parser.add_argument("--rows", default=None, help="also write every row here (JSON lines), for sweeps")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    model = EchoGen.load(args.model)
    fit = answer_both(model, "val", args.scenes, 0, config=scene_config)
    fit += answer_both(model, "heldout", args.compositions, COMPOSITIONS_SEED)
    sets = {
        "test": answer_both(model, "test", args.test_scenes, 0, config=scene_config),
        "compositions": answer_both(model, "heldout", args.compositions, COMPOSITIONS_SEED, args.compositions),
    }
    for lo, hi in SCALE_BANDS if args.band_scenes else ():
        band = SceneConfig(scale_range=(lo, hi))
        sets[f"test x{lo:g}-{hi:g}"] = answer_both(model, "test", args.band_scenes, 0, config=band)
    if args.rows:
        write_rows(args.rows, {"fit": fit, **sets})
    report = {}
    for way in WAYS:
        usable = [a.rows[way] for a in fit if not a.rows[way].failed_check]
        calibration = Calibration.fit([r.signals for r in usable], [r.right for r in usable])
        report[way] = {name: scored([a.rows[way] for a in answered], calibration) for name, answered in sets.items()}
        report[way]["second_looks"] = sum(a.rows["crop"] is not a.rows["one look"] for a in sets["test"])
    if args.json:
        print(json.dumps(report))
        return 0
    for name in sets:
        print(f"{name}: " + " / ".join(SHOWN))
        for way in WAYS:
            print(f"  {way:22s} " + "  ".join(f"{report[way][name][k]:.3f}" for k in SHOWN))
    return 0


if __name__ == "__main__":
    sys.exit(main())
