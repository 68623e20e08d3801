"""Calibrate a model's scene inventory (echogen_ros.model.inventory): for every object it lists in val-split world
scenes (half of them drawn at any object size, 2-12 objects: `scene_config`), its signals and whether it is
right (a true object of its label at IoU ≥ 0.5, `evaluation.inventory.matches`); a logistic regression of right
on the signals, fitted there, becomes the score the one-pass listing reports (`parse_scene(method="sequence")`).
The fit is then scored on the test split (ECE, AUROC, beside the raw score) and recorded with it. The held-out
split is never read: report it with `echogen eval --inventory --listing sequence`.

    echogen-train calibrate-inventory --model DIR [--scenes 150] [--test-scenes 100] [--seed 0]

DIR's manifest gets `inventory_calibration` (replacing one it had, which is never read); a copy of DIR is
calibrated and swapped in, so a failure leaves DIR as it was. Its weights are not touched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from echogen_ros.evaluation.inventory import calibration_report, collect
from echogen_ros.model import checkpoint, inventory
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.inventory import InventoryCalibration
from echogen_ros.outputs import swapped_in, write_file
from echogen_ros.world.scene import FITTING_WORLD, scene_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="the model directory to calibrate")
    parser.add_argument("--scenes", type=int, default=150, help="val-split scenes to fit on (≥ 10)")
    parser.add_argument("--test-scenes", type=int, default=100, help="test-split scenes to score the fit on (≥ 10)")
    parser.add_argument("--seed", type=int, default=0, help="the world seed of the scenes")


def calibrate(model: EchoGen, seed: int, scenes: int, test_scenes: int) -> InventoryCalibration:
    """The calibration fitted on val, with what it and the raw score measure on test."""
    fit_rows = collect(model, "val", scenes, seed, config=scene_config)
    if len({r.right for r in fit_rows}) < 2:
        raise ValueError(f"the model's {len(fit_rows)} objects listed on val are all right or all wrong: nothing "
                         "to calibrate on (train it on the inventory first)")  # fmt: skip
    fitted = InventoryCalibration.fit([r.signals for r in fit_rows], [r.right for r in fit_rows])
    test_rows = collect(model, "test", test_scenes, seed, config=scene_config)
    metrics = {"split": "test", "scenes": test_scenes, **calibration_report(test_rows, fitted),
               "raw_score": calibration_report(test_rows, None)}  # fmt: skip
    fitted_on = {"split": "val", "seed": seed, "scenes": scenes, "world": FITTING_WORLD, "listed": len(fit_rows),
                 "right": sum(r.right for r in fit_rows),
                 "weights": model.manifest["files"][checkpoint.WEIGHTS]}  # fmt: skip
    return InventoryCalibration(fitted.weights, fitted_on, metrics)


def run(args: argparse.Namespace) -> int:
    if args.scenes < 10 or args.test_scenes < 10:
        raise ValueError("--scenes and --test-scenes must be ≥ 10")
    start = time.monotonic()
    inventory.require(checkpoint.read_manifest(args.model))  # every file as its manifest says, and able to list
    with swapped_in(args.model) as partial, torch.inference_mode():  # tools run in one process with others
        shutil.copytree(args.model, partial)
        _write_manifest(partial, None)  # measured raw: an old calibration is refitted, never read
        calibration = calibrate(EchoGen.load(partial), args.seed, args.scenes, args.test_scenes)
        _write_manifest(partial, calibration)
        EchoGen.load(partial)  # reads back as every user will
    print(json.dumps({**calibration.to_manifest(), "wall_s": round(time.monotonic() - start, 1)}))
    return 0


def _write_manifest(directory: Path, calibration: InventoryCalibration | None) -> None:
    manifest = checkpoint.read_manifest(directory, verify=False)
    manifest.pop(inventory.MANIFEST_KEY, None)
    if calibration is not None:
        manifest[inventory.MANIFEST_KEY] = calibration.to_manifest()
    write_file(directory / checkpoint.MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
