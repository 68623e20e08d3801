"""`echogen demo`: the sim camera and scripted instructions through the runtime → MCAP bag + HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from echogen_ros.cli.args import bounded_int, probability
from echogen_ros.outputs import check_target
from echogen_ros.params import BY_NAME

RANDOM_NOTE = (
    "No trained model is installed with this echogen_ros (echogen_ros/model/default is missing) and none was "
    "given (--model DIR): this demo runs a randomly initialised tabletop model, so its boxes and images are "
    "meaningless. The pipeline is real."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="sim camera + scripted instructions → MCAP bag + HTML report (no ROS needed)")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output directory")
    p.add_argument("--model", type=Path, default=None, help="model directory (default: the embedded model)")
    p.add_argument("--scenes", type=bounded_int(1, 50), default=3)
    p.add_argument("--seed", type=bounded_int(0, 2**31 - 1), default=0)
    p.add_argument("--threshold", type=probability, default=BY_NAME["score_threshold"].default,
                   help="the probability a referent must reach to be found (the node's score_threshold)")  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from echogen_ros.demo import run_demo
    from echogen_ros.model import echogen
    from echogen_ros.model.provenance import describe_model

    check_target(args.out, overwrite=True)  # a foreign --out fails before the model loads
    note = info = ""
    if args.model is None and not (echogen.DEFAULT_MODEL_DIR / "echogen.json").is_file():
        print(f"warning: {RANDOM_NOTE}", file=sys.stderr)
        model, note = echogen.EchoGen.create("tabletop"), RANDOM_NOTE
    else:
        model = echogen.EchoGen.load(args.model)
        info = describe_model(model, "the embedded default model" if args.model is None else str(args.model))
        print(info, file=sys.stderr)
    report = run_demo(args.out, model, args.scenes, args.seed, note, info, args.threshold)
    print(f"wrote {report} and the bag {args.out / 'bag'}; open the report in a browser")
    return 0
