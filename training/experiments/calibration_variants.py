"""Which inputs the calibration should read, and whether the no-target probability should also gate an answer:
variants of `echogen_ros.model.confidence` compared on the rows `experiments.second_look --rows` writes (every
expression of val, seed 7's held-out scenes, test and test's bands of object scale, answered each way), with no
grounding of its own. Each variant is fitted as `echogen-train calibrate --compositions N` fits the shipped one
(val and seed 7's scenes 0..N-1, the answers that pass the checks) on the shipped answers (the second look below
`--below`, with the larger no-target probability) and scored on test, seed 7's scenes N..2N-1 and the bands:
selection splits only, never the fresh held-out set.

- "shipped": `confidence.FEATURES`;
- "+ looked again": and an indicator of the second look, and its products with the score's and the no-target
  probability's logits (the crop's score is read at another scale, so the same score may mean another thing);
- "+ size²": and the square of the held log size (a size term that need not be monotone);
- "gate absent ≥ g": the shipped features, and an answer whose no-target probability reaches g is given 0 (not
  found), fitted without those answers, as the answer checks' failures are.

    PYTHONPATH=training .venv/bin/python -m experiments.second_look --band-scenes 40 --rows ROWS
    PYTHONPATH=training .venv/bin/python -m experiments.calibration_variants ROWS [--below 0.08] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable

import numpy as np

from echogen_ros.evaluation import trust
from echogen_ros.model import confidence
from echogen_ros.model.finding import SECOND_LOOK_BELOW

SHOWN = ("found_and_right", "found_but_wrong", "no_target_accuracy", "ece", "auroc", "answers")
Answer = dict  # {"row": trust.Row as the shipped model answers, "looked": whether the crop's answer it is}
GATES = (0.9, 0.95, 0.97, 0.99)


def shipped_rows(path: str, below: float) -> dict[str, list[Answer]]:
    """Per set, each expression's answer as the shipped model gives it: the crop's ("crop, larger absent")
    where the whole frame's best box is below `below` of the side and a crop was looked at, else the frame's;
    `looked` says which."""
    sets: dict[str, list[Answer]] = {}
    with open(path) as lines:
        records = [json.loads(line) for line in lines]
    for record in records:
        one, crop = record["rows"]["one look"], record["rows"]["crop, larger absent"]
        looked = record["share"] < below and crop != one
        score, margin, absent, size, present, right, kind, failed = crop if looked else one
        row = trust.Row(confidence.Signals(score, margin, absent, size), present, right, kind, failed)
        sets.setdefault(record["set"], []).append({"row": row, "looked": looked})
    return sets


def shipped_features(answer: Answer) -> list[float]:
    return confidence.features(answer["row"].signals)


def looked_features(answer: Answer) -> list[float]:
    s, looked = answer["row"].signals, float(answer["looked"])
    return [*confidence.features(s), looked, looked * confidence.logit(s.score), looked * confidence.logit(s.absent)]


def size_squared_features(answer: Answer) -> list[float]:
    s = answer["row"].signals
    size = math.log(min(max(s.size, confidence.SMALLEST), confidence.LARGEST))
    return [*confidence.features(s), size * size]


def variant(features: Callable[[Answer], list[float]], gate: float = 1.01) -> Callable:
    """A fitting function: answers to fit on → a function of answers to probabilities."""

    def gated(answer: Answer) -> bool:
        return bool(answer["row"].failed_check) or answer["row"].signals.absent >= gate

    def fit(answers: list[Answer]) -> Callable[[list[Answer]], np.ndarray]:
        usable = [a for a in answers if not gated(a)]
        w = confidence.fit_logistic(np.array([features(a) for a in usable]), np.array([a["row"].right for a in usable]))

        def probabilities(scored: list[Answer]) -> np.ndarray:
            p = 1 / (1 + np.exp(-(np.array([features(r) for r in scored]) @ w)))
            return np.where([gated(r) for r in scored], 0.0, p)

        return probabilities

    return fit


VARIANTS = {"shipped": variant(shipped_features), "+ looked again": variant(looked_features),
            "+ size²": variant(size_squared_features),
            **{f"gate absent ≥ {g:g}": variant(shipped_features, g) for g in GATES}}  # fmt: skip


def scored(answers: list[Answer], p: np.ndarray) -> dict:
    """`trust.measured`'s figures of `answers` with probabilities `p` (those of SHOWN)."""
    figures = trust.measured([a["row"] for a in answers], p)
    return {k: figures[k] for k in SHOWN}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", help="the rows `experiments.second_look --rows` wrote")
    parser.add_argument("--below", type=float, default=SECOND_LOOK_BELOW, help="the second look's bound")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sets = shipped_rows(args.rows, args.below)
    fit_rows = sets.pop("fit")
    report = {}
    for name, fit in VARIANTS.items():
        probabilities = fit(fit_rows)
        report[name] = {s: scored(rows, probabilities(rows)) for s, rows in sets.items()}
        small = [r for rows in sets.values() for r in rows if r["looked"]]
        report[name]["looked again (all sets)"] = scored(small, probabilities(small))
    if args.json:
        print(json.dumps(report))
        return 0
    for s in report["shipped"]:
        print(f"{s}: " + " / ".join(SHOWN))
        for name in VARIANTS:
            print(f"  {name:18s} " + "  ".join(f"{report[name][s][k]:.3f}" for k in SHOWN))
    return 0


if __name__ == "__main__":
    sys.exit(main())
