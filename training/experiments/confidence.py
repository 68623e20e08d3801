"""How far the grounder's own numbers say whether its box is right (issue 34, before any calibration): for
every expression of world scenes, the greedy box's score (geometric mean of its four bin probabilities), its
least sure bin, and its margin over the best other distinct box (1 − runner-up score / score; 1 without a
runner-up); right means IoU ≥ 0.5 with the referent. Reports each signal's AUROC (right against wrong) and
ECE on the report split, and a logistic fit of the three on the fit split (val) scored on the report split
(test): what a calibration can reach from these signals. Run from the repository root:

    PYTHONPATH=training .venv/bin/python -m experiments.confidence --scenes 100 --json > confidence.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from echogen_ros.evaluation.calibration import auroc, ece, reliability
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.layout import box_iou
from echogen_ros.world.dataset import world_sample

SIGNALS = ("score", "least_bin", "margin")


def measure(model: EchoGen, split: str, scenes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Per expression of `scenes` scenes of `split`: the three signals and whether the box is right."""
    rows = {name: [] for name in (*SIGNALS, "right")}
    for index in range(scenes):
        sample = world_sample(seed, index, split)
        if not sample.expressions:
            continue
        image, boxes = sample.image(), sample.boxes()
        texts = [e.text for e in sample.expressions]
        array, ids, mask, _ = model.grounding_inputs(image, texts)
        _, probs, _, _ = model.decode_grounding(array, ids, mask)
        for e, text, p in zip(sample.expressions, texts, probs):
            best, *rest = model.ground(image, text, top_k=2)
            rows["score"].append(best.score)
            rows["least_bin"].append(float(p.min()))
            rows["margin"].append(1.0 - rest[0].score / best.score if rest else 1.0)
            rows["right"].append(box_iou(best.box, boxes[e.target]) >= 0.5)
    return {k: np.asarray(v, dtype=bool if k == "right" else np.float64) for k, v in rows.items()}


def _features(data: dict[str, np.ndarray]) -> np.ndarray:
    clip = lambda v: np.clip(v, 1e-6, 1 - 1e-6)  # noqa: E731
    logit = lambda v: np.log(clip(v) / (1 - clip(v)))  # noqa: E731
    columns = [logit(data["score"]), logit(data["least_bin"]), data["margin"], np.ones(len(data["score"]))]
    return np.stack(columns, axis=1)


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3, steps: int = 50) -> np.ndarray:
    """Weights of a logistic regression (Newton's method, a small ridge so separable data stays finite)."""
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ w))
        gradient = x.T @ (p - y) + ridge * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(len(w))
        w -= np.linalg.solve(hessian, gradient)
    return w


def report(fit: dict[str, np.ndarray], test: dict[str, np.ndarray]) -> dict:
    right = test["right"]
    out = {"answers": int(len(right)), "accuracy": float(right.mean()), "signals": {}}
    for name in SIGNALS:
        out["signals"][name] = {"auroc": auroc(test[name], right), "ece": ece(np.clip(test[name], 0, 1), right)}
    w = fit_logistic(_features(fit), fit["right"].astype(np.float64))
    combined = 1 / (1 + np.exp(-_features(test) @ w))
    out["logistic_fit_on_val"] = {"weights": [round(float(v), 4) for v in w], "auroc": auroc(combined, right),
                                  "ece": ece(combined, right), "reliability": reliability(combined, right)}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the embedded model)")
    parser.add_argument("--scenes", type=int, default=100, help="scenes of each split")
    parser.add_argument("--fit-split", default="val")
    parser.add_argument("--report-split", default="test")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    model = EchoGen.load(args.model)
    result = report(measure(model, args.fit_split, args.scenes), measure(model, args.report_split, args.scenes))
    result.update(fit_split=args.fit_split, report_split=args.report_split, scenes=args.scenes)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
