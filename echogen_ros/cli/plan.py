"""`echogen plan` (goal layout + imagined goal scene + verdict) and `echogen verify` (verdict only).

Neither acts on a referent the model did not find: `plan` stops with the reason (exit 2); `verify` says it in
its verdict (cannot_tell, or for find / pick up what the absence means), and stops on words or a frame it
cannot read."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from echogen_ros.cli.args import bounded_int
from echogen_ros.cli.model import add_backend, add_threshold, load_model, read_image
from echogen_ros.limits import text_problem
from echogen_ros.outputs import check_target, staged
from echogen_ros.runtime.images import encode_png


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="instruction + image → goal layout, imagined goal scene, verdict")
    _common(p)
    p.add_argument("--out", type=Path, required=True, help="directory for plan.json and imagined.png")
    p.add_argument("--seed", type=bounded_int(0, 2**63 - 1), default=0)
    p.set_defaults(run=run_plan)
    v = sub.add_parser("verify", help="does the image already satisfy the instruction? (JSON verdict)")
    _common(v)
    v.set_defaults(run=run_verify)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", type=Path, required=True)
    p.add_argument("--instruction", required=True, help='e.g. "put the red cup left of the plate"')
    p.add_argument("--model", type=Path, default=None, help="model directory (default: the embedded model)")
    add_threshold(p, "--min-score")
    add_backend(p)


def _setup(args: argparse.Namespace):
    from echogen_ros.planning.commands import parse_command
    from echogen_ros.planning.grounders import ModelGrounder

    problem = text_problem(args.instruction, "--instruction")
    if problem:
        raise ValueError(problem)
    command = parse_command(args.instruction)  # bad instructions fail before the model loads
    image = read_image(args.image)
    model = load_model(args.model, args.backend)
    return command, image, model, ModelGrounder(model, args.threshold)


def run_plan(args: argparse.Namespace) -> int:
    from echogen_ros.planning.imagination import imagine_goal

    check_target(args.out, overwrite=True)  # a foreign --out fails before the model loads
    command, image, model, grounder = _setup(args)
    imagined = imagine_goal(model, command, image, seed=args.seed, grounder=grounder)
    result, cycle = imagined.plan, imagined.cycle
    document = {**result.to_json(), "imagined": "imagined.png", "cycle_iou": round(cycle.mean_iou, 4),
                "cycle_object_iou": [round(v, 4) for v in cycle.ious],
                "cycle_passed": imagined.cycle_passed}  # fmt: skip
    with staged(args.out, overwrite=True, kind="plan") as partial:  # replaces an earlier plan, nothing else
        partial.mkdir(parents=True)
        (partial / "imagined.png").write_bytes(encode_png(cycle.image))
        (partial / "plan.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"plan": str(args.out / "plan.json"), "satisfied_now": result.verdict.satisfied,
                      "cycle_iou": document["cycle_iou"], "cycle_passed": imagined.cycle_passed,
                      "notes": result.notes}))  # fmt: skip
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from echogen_ros.planning.verify import verify_command

    command, image, _, grounder = _setup(args)
    print(json.dumps(verify_command(grounder, image, command).to_json()))
    return 0
