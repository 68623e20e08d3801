"""Whether the calibration's scenes of new compositions should be drawn at any object size, as its val scenes are.

`echogen-train calibrate --compositions N` fits on val (half the scenes at any size: `scene_config`) and on seed 7's
held-out scenes 0..N-1 at the default size. New compositions at small sizes were seen by no fit, and the fresh
held-out set's small objects are over-confident there (ECE 0.087 at × 0.5–0.7, docs/benchmarks.md, "the second look
shipped"). This compares, on the shipped answers (`calibration_variants.shipped_rows`: the second look below 0.08)
and the shipped features, calibrations fitted on

- "shipped": val + seed 7's scenes 0..N-1 at the default size;
- "compositions half any size": val + the same scenes drawn as val's are (`scene_config`: odd ones at any size);
- "both": val + both draws of those scenes (the odd ones twice, once each way),

scored on the selection splits: test (half any size) and its scale bands, seed 7's scenes N..2N-1 at the default
size, and seed 7's scenes N..N+M-1 drawn at each scale band (new compositions and sizes: the fresh set's kind,
never the fresh set).

`collect` grounds the sets `experiments.second_look --rows` does not write (the odd held-out scenes 0..N-1 at any
size, and held-out scenes at each band); `compare` reads both files. Run from the repository root:

    PYTHONPATH=training .venv/bin/python -m experiments.second_look --band-scenes 40 --rows ROWS   # 26 min
    PYTHONPATH=training .venv/bin/python -m experiments.calibration_sizes collect MORE [--band-scenes 40]
    PYTHONPATH=training .venv/bin/python -m experiments.calibration_sizes compare ROWS MORE [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

from echogen_training.tools.calibrate import COMPOSITIONS_SEED

from echogen_ros.evaluation.world_sets import SCALE_BANDS
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.finding import SECOND_LOOK_BELOW
from echogen_ros.world.dataset import world_sample
from echogen_ros.world.scene import SceneConfig, scene_config
from experiments.calibration_variants import SHOWN, scored, shipped_features, shipped_rows, variant
from experiments.second_look import answer_both, write_rows

ODD_ANY_SIZE = "fit compositions, odd scenes at any size"


def band_name(lo: float, hi: float) -> str:
    return f"compositions x{lo:g}-{hi:g}"


def collect(model: EchoGen, path: str, compositions: int, band_scenes: int) -> None:
    """The odd held-out scenes 0..N-1 drawn at any size (as `scene_config` draws them; the even ones are the
    default draw, which second_look already answered) and held-out scenes N..N+M-1 drawn at each band."""
    odd = [a for i in range(1, compositions, 2)
           for a in answer_both(model, "heldout", 1, COMPOSITIONS_SEED, i, scene_config)]  # fmt: skip
    sets = {ODD_ANY_SIZE: odd}
    for lo, hi in SCALE_BANDS:
        band = SceneConfig(scale_range=(lo, hi))
        sets[band_name(lo, hi)] = answer_both(model, "heldout", band_scenes, COMPOSITIONS_SEED, compositions, band)
    write_rows(path, sets)


def by_scene(answers: list, compositions: int) -> list[list]:
    """Seed 7's held-out scenes 0..N-1 at the default size, answered (the tail of second_look's "fit" set, after
    val's), cut into scenes: each gives an answer per expression, with a referent or none."""
    counts = []
    for index in range(compositions):
        sample = world_sample(COMPOSITIONS_SEED, index, "heldout")
        counts.append(len(sample.expressions) + len(sample.absent))
    if sum(counts) > len(answers):
        raise ValueError(f"the rows hold {len(answers)} fitted answers, fewer than {compositions} held-out scenes give")
    tail = answers[len(answers) - sum(counts) :]
    scenes, at = [], 0
    for n in counts:
        scenes.append(tail[at : at + n])
        at += n
    return scenes


def compare(rows_path: str, more_path: str, compositions: int, below: float) -> dict:
    sets = shipped_rows(rows_path, below)
    more = shipped_rows(more_path, below)
    fit = sets.pop("fit")
    scenes = by_scene(fit, compositions)
    val = fit[: len(fit) - sum(map(len, scenes))]
    default = [a for scene in scenes for a in scene]
    even = [a for scene in scenes[::2] for a in scene]
    odd = more.pop(ODD_ANY_SIZE)
    fits = {"shipped": val + default, "compositions half any size": val + even + odd, "both": val + default + odd}
    fitting = variant(shipped_features)
    report = {}
    for name, answers in fits.items():
        probabilities = fitting(answers)
        scores = {s: scored(rows, probabilities(rows)) for s, rows in {**sets, **more}.items()}
        report[name] = {"fitted_answers": len(answers), "scores": scores}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="ground the held-out sets second_look does not")
    c.add_argument("out")
    c.add_argument("--model", default=None, help="model directory (default: the embedded model)")
    c.add_argument("--compositions", type=int, default=100)
    c.add_argument("--band-scenes", type=int, default=40)
    m = sub.add_parser("compare", help="fit each way and score it")
    m.add_argument("rows", help="what `experiments.second_look --rows` wrote")
    m.add_argument("more", help="what `collect` wrote")
    m.add_argument("--compositions", type=int, default=100)
    m.add_argument("--below", type=float, default=SECOND_LOOK_BELOW)
    m.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "collect":
        collect(EchoGen.load(args.model), args.out, args.compositions, args.band_scenes)
        return 0
    report = compare(args.rows, args.more, args.compositions, args.below)
    if args.json:
        print(json.dumps(report))
        return 0
    for name, way in report.items():
        print(f"{name}: fitted on {way['fitted_answers']} answers")
    for s in next(iter(report.values()))["scores"]:
        print(f"{s}: " + " / ".join(SHOWN))
        for name, way in report.items():
            print(f"  {name:28s} " + "  ".join(f"{way['scores'][s][k]:.3f}" for k in SHOWN))
    return 0


if __name__ == "__main__":
    sys.exit(main())
