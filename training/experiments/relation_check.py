"""What the relation check (echogen_ros.model.relation_check) changes, on the same answers: every expression of
world scenes (with a referent, and no-target) scored by `evaluation.trust` with the model's calibration, once as
`find` answers (a box failing the check gets probability 0) and once as if there were no check. Run from the
repository root:

    PYTHONPATH=training .venv/bin/python -m experiments.relation_check [--model DIR] [--split test]
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

SHOWN = ("no_target_accuracy", "found_and_right", "found_but_wrong", "ece", "auroc", "acc@0.5")


def both_ways(model: EchoGen, split: str, seed: int, scenes: int, config=None) -> dict:
    """`trust.report` of the same rows with the check ("with") and without it ("without")."""
    rows = trust.collect(model, split, scenes, seed, config=config)
    unchecked = [dataclasses.replace(r, relation_failed=False) for r in rows]
    return {"with": trust.report(rows, model.calibration), "without": trust.report(unchecked, model.calibration)}


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
        report = both_ways(model, s.split, s.seed, s.count, s.config)
    else:
        report = both_ways(model, args.split, args.seed, args.scenes)
    if args.json:
        print(json.dumps(report))
        return 0
    for way, r in report.items():
        shown = ", ".join(f"{k} {r[k]:.3f}" for k in SHOWN)
        kinds = "; ".join(f"{kind} {v['not_found']:.3f}" for kind, v in r["by_kind"].items() if "not_found" in v)
        print(f"{way} the check: {shown}; no-target not found by kind: {kinds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
