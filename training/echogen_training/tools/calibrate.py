"""Calibrate a model's confidence (echogen_ros.model.confidence): for every referring expression and every
no-target expression of val-split world scenes (half of them drawn at any object size: `scene_config`), the
best box's signals and whether it is right; a logistic regression of right on the signals, fitted there,
becomes the probability every grounding reports. The fit is
then scored on the test split (ECE, AUROC, no-target accuracy, Acc@0.5) and recorded with it.

val and test hold only the compositions training saw, and a fit there is over-confident on new ones (the fresh
held-out set, docs/benchmarks.md 2026-12-06). `--compositions N` also fits on the first N scenes of seed 7's
held-out split, which this project reads as its validation split for compositions (docs/results.md), and scores
the fit on its next N scenes. The fresh held-out set is never read: report it with `echogen eval`.

    echogen-train calibrate --model DIR [--scenes 150] [--test-scenes 100] [--seed 0] [--compositions 0]
        [--second-look-below 0.08]

DIR's manifest gets `calibration` (replacing one it had, which is never read); a copy of DIR is calibrated and
swapped in, so a failure leaves DIR as it was. Its weights are not touched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from echogen_ros.evaluation import trust
from echogen_ros.model import checkpoint, finding
from echogen_ros.model.confidence import Calibration
from echogen_ros.model.echogen import EchoGen
from echogen_ros.outputs import swapped_in, write_file
from echogen_ros.world.scene import FITTING_WORLD, scene_config

# the held-out seed this project reads as validation for compositions (docs/results.md); the fresh one is FRESH_HELDOUT
COMPOSITIONS_SEED = 7


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="the model directory to calibrate")
    parser.add_argument("--scenes", type=int, default=150, help="val-split scenes to fit on (≥ 10)")
    parser.add_argument("--test-scenes", type=int, default=100, help="test-split scenes to score the fit on (≥ 10)")
    parser.add_argument("--seed", type=int, default=0, help="the world seed of the scenes")
    parser.add_argument(
        "--compositions",
        type=int,
        default=0,
        help=("also fit on this many held-out scenes of seed 7 (new compositions); scored on as many more"),
    )
    parser.add_argument(
        "--second-look-below",
        type=float,
        default=finding.SECOND_LOOK_BELOW,
        help=(
            "find's second look: a best box whose side is below this share of the frame's is "
            "grounded again in a crop around it (0: one look); the calibrated model does the same"
        ),
    )


def calibrate(model: EchoGen, seed: int, scenes: int, test_scenes: int, compositions: int = 0,
              second_look_below: float | None = finding.SECOND_LOOK_BELOW) -> tuple[Calibration, dict]:  # fmt: skip
    """The calibration fitted on val (and `compositions` held-out scenes of COMPOSITIONS_SEED), on the answers
    that pass the answer checks (`finding.CHECKS`; the rest are given probability 0), answered with the second look
    at `second_look_below` (None: one look), and what it and the raw score measure on test (and the next
    `compositions` of those scenes)."""
    model.second_look_below = second_look_below  # the answers, as the calibrated model will give them
    fit_rows = trust.collect(model, "val", scenes, seed, config=scene_config)
    new = trust.collect(model, "heldout", compositions, COMPOSITIONS_SEED) if compositions else []
    usable = [r for r in fit_rows + new if not r.failed_check]  # the checks' failures are given probability 0
    calibration = Calibration.fit([r.signals for r in usable], [r.right for r in usable])
    test_rows = trust.collect(model, "test", test_scenes, seed, config=scene_config)
    test = trust.compared(test_rows, calibration)
    metrics = {"split": "test", "scenes": test_scenes,
               **{k: v for k, v in test.items() if k not in ("reliability", "by_kind")}}  # fmt: skip
    fitted_on = {"split": "val", "seed": seed, "scenes": scenes, "world": FITTING_WORLD, "answers": len(fit_rows),
                 "no_target": sum(not r.present for r in fit_rows),
                 "weights": model.manifest["files"][checkpoint.WEIGHTS],
                 "second_look_below": model.second_look_below}  # fmt: skip
    if compositions:
        scored = trust.collect(model, "heldout", compositions, COMPOSITIONS_SEED, first=compositions)
        fitted_on["compositions"] = {"split": "heldout", "seed": COMPOSITIONS_SEED, "scenes": compositions,
                                     "answers": len(new)}  # fmt: skip
        metrics["compositions"] = {"scenes": [compositions, 2 * compositions - 1],
                                   **{k: v for k, v in trust.compared(scored, calibration).items()
                                      if k not in ("reliability", "by_kind")}}  # fmt: skip
    return Calibration(calibration.weights, fitted_on, metrics), test


def run(args: argparse.Namespace) -> int:
    if args.scenes < 10 or args.test_scenes < 10 or args.compositions < 0 or 0 < args.compositions < 10:
        raise ValueError("--scenes, --test-scenes and --compositions (unless 0) must be ≥ 10 (about 150 answers each)")
    if not 0.0 <= args.second_look_below < 1.0:
        raise ValueError("--second-look-below must be a share of the frame's side in [0, 1) (0: one look)")
    start = time.monotonic()
    checkpoint.read_manifest(args.model)  # every file as its manifest says, before anything is copied
    with swapped_in(args.model) as partial, torch.inference_mode():  # tools run in one process with others
        shutil.copytree(args.model, partial)
        _write_manifest(partial, None)  # measured raw: an old calibration is refitted, never read
        calibration, test = calibrate(
            EchoGen.load(partial),
            args.seed,
            args.scenes,
            args.test_scenes,
            args.compositions,
            args.second_look_below or None,
        )
        _write_manifest(partial, calibration)
        EchoGen.load(partial)  # reads back as every user will
    print(json.dumps({**calibration.to_manifest(), "reliability": test["reliability"],
                      "wall_s": round(time.monotonic() - start, 1)}))  # fmt: skip
    return 0


def _write_manifest(directory: Path, calibration: Calibration | None) -> None:
    manifest = checkpoint.read_manifest(directory, verify=False)
    manifest.pop("calibration", None)
    if calibration is not None:
        manifest["calibration"] = calibration.to_manifest()
    write_file(directory / checkpoint.MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
