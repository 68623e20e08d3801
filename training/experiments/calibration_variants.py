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

from echogen_ros.evaluation.calibration import auroc, ece
from echogen_ros.model import confidence
from echogen_ros.model.finding import DEFAULT_THRESHOLD, SECOND_LOOK_BELOW

SHOWN = ("found_and_right", "found_but_wrong", "no_target_accuracy", "ece", "auroc", "answers")
GATES = (0.9, 0.95, 0.97, 0.99)


def shipped_rows(path: str, below: float) -> dict[str, list[dict]]:
    """Per set, each expression's answer as the shipped model gives it: the crop's ("crop, larger absent")
    where the whole frame's best box is below `below` of the side and a crop was looked at, else the frame's;
    `looked` says which."""
    sets: dict[str, list[dict]] = {}
    with open(path) as lines:
        records = [json.loads(line) for line in lines]
    for record in records:
        one, crop = record["rows"]["one look"], record["rows"]["crop, larger absent"]
        looked = record["share"] < below and crop != one
        score, margin, absent, size, present, right, kind, failed = crop if looked else one
        sets.setdefault(record["set"], []).append(
            {"signals": confidence.Signals(score, margin, absent, size), "present": present, "right": right,
             "kind": kind, "failed": failed, "looked": looked})  # fmt: skip
    return sets


def shipped_features(row: dict) -> list[float]:
    return confidence.features(row["signals"])


def looked_features(row: dict) -> list[float]:
    s, looked = row["signals"], float(row["looked"])
    return [*confidence.features(s), looked, looked * confidence.logit(s.score), looked * confidence.logit(s.absent)]


def size_squared_features(row: dict) -> list[float]:
    size = math.log(min(max(row["signals"].size, confidence.SMALLEST), confidence.LARGEST))
    return [*confidence.features(row["signals"]), size * size]


def variant(features: Callable[[dict], list[float]], gate: float = 1.01) -> Callable:
    """A fitting function: rows to fit on → a function of rows to probabilities."""

    def gated(row: dict) -> bool:
        return bool(row["failed"]) or row["signals"].absent >= gate

    def fit(rows: list[dict]) -> Callable[[list[dict]], np.ndarray]:
        usable = [r for r in rows if not gated(r)]
        w = confidence.fit_logistic(np.array([features(r) for r in usable]), np.array([r["right"] for r in usable]))

        def probabilities(scored: list[dict]) -> np.ndarray:
            p = 1 / (1 + np.exp(-(np.array([features(r) for r in scored]) @ w)))
            return np.where([gated(r) for r in scored], 0.0, p)

        return probabilities

    return fit


VARIANTS = {"shipped": variant(shipped_features), "+ looked again": variant(looked_features),
            "+ size²": variant(size_squared_features),
            **{f"gate absent ≥ {g:g}": variant(shipped_features, g) for g in GATES}}  # fmt: skip


def scored(rows: list[dict], p: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> dict:
    right = np.array([r["right"] for r in rows], dtype=bool)
    present = np.array([r["present"] for r in rows], dtype=bool)
    found = p >= threshold
    return {"found_and_right": float((found & right)[present].mean()),
            "found_but_wrong": float((found & ~right).mean()),
            "no_target_accuracy": float((~found[~present]).mean()) if (~present).any() else float("nan"),
            "ece": ece(p, right), "auroc": auroc(p, right), "answers": len(rows)}  # fmt: skip


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
