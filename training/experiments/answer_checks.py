"""What the answer checks (echogen_ros.model.relation_check, ordinal_check, category_check, closer_look) change,
on the same answers: every expression of world scenes (with a referent, and no-target) scored by
`evaluation.trust` with the model's calibration, as `find` answers them (a box failing a check gets probability 0:
"all", the category check last), with the checks added one at a time ("relation", "+ordinal", "+closer_look"),
and with no check ("none"). Run from the repository root:

    PYTHONPATH=training .venv/bin/python -m experiments.answer_checks [--model DIR] [--split test]
        [--seed 0] [--scenes 60] [--fresh-heldout] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from echogen_ros.evaluation import trust
from echogen_ros.evaluation.world_sets import FRESH_HELDOUT
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.finding import CHECKS

SHOWN = ("no_target_accuracy", "found_and_right", "found_but_wrong", "ece", "auroc", "acc@0.5")
WAYS = {
    "none": (),
    "relation": ("relation",),
    "+ordinal": ("relation", "ordinal"),
    "+closer_look": ("relation", "ordinal", "closer_look"),
    "all": tuple(CHECKS),
}  # the checks kept


def each_way(model: EchoGen, split: str, seed: int, scenes: int, config=None) -> dict:
    """`trust.report` of the same rows for each of WAYS."""
    rows = trust.collect(model, split, scenes, seed, config=config)
    out = {}
    for way, kept in WAYS.items():
        these = [r if r.failed_check in kept else dataclasses.replace(r, failed_check="") for r in rows]
        out[way] = trust.report(these, model.calibration)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: the embedded model)")
    parser.add_argument("--split", default="test", choices=("val", "test", "heldout"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument("--fresh-heldout", action="store_true", help="the fresh held-out set (report only)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    model = EchoGen.load(args.model)
    if args.fresh_heldout:
        s = FRESH_HELDOUT
        report = each_way(model, s.split, s.seed, s.count, s.config)
    else:
        report = each_way(model, args.split, args.seed, args.scenes)
    if args.json:
        print(json.dumps(report))
        return 0
    for way, r in report.items():
        shown = ", ".join(f"{k} {r[k]:.3f}" for k in SHOWN)
        kinds = "; ".join(f"{kind} {v['not_found']:.3f}" for kind, v in r["by_kind"].items() if "not_found" in v)
        print(f"checks {way}: {shown}; no-target not found by kind: {kinds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
