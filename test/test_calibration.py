"""Calibration metrics on hand-made probability tables (issue 34): AUROC of right against wrong answers,
expected calibration error and the reliability table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from echogen_ros.evaluation.calibration import auroc, ece, reliability


def test_auroc_ranks_right_above_wrong_with_ties_counted_half() -> None:
    assert auroc([0.9, 0.8, 0.3, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.3, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert auroc([0.5, 0.5, 0.5], [True, False, True]) == 0.5
    # 2 right (0.9, 0.4) against 2 wrong (0.6, 0.2): 3 of the 4 pairs ordered right
    assert auroc([0.9, 0.6, 0.4, 0.2], [True, False, True, False]) == 0.75
    assert math.isnan(auroc([0.9, 0.8], [True, True]))


def test_auroc_agrees_with_counting_every_pair() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 20, 300) / 20  # many ties
    right = rng.random(300) < scores
    pairs = [(s > t) + 0.5 * (s == t) for s, r in zip(scores, right) if r for t, w in zip(scores, right) if not w]
    assert auroc(scores, right) == pytest.approx(np.mean(pairs), abs=1e-12)


def test_ece_and_the_reliability_table() -> None:
    confidence = [0.95, 0.95, 0.95, 0.95, 0.25, 0.25, 0.25, 0.25]
    right = [True, True, True, False, False, False, False, True]
    rows = reliability(confidence, right)
    assert [(r["low"], r["count"], r["accuracy"]) for r in rows] == [(0.2, 4, 0.25), (0.9, 4, 0.75)]
    assert ece(confidence, right) == pytest.approx(0.5 * 0.2 + 0.5 * 0.0)
    assert ece([0.7] * 10, [True] * 7 + [False] * 3) == pytest.approx(0.0)  # calibrated
    assert ece([1.0] * 4, [False] * 4) == 1.0  # sure and always wrong; 1.0 falls in the last bin
    with pytest.raises(ValueError, match="probabilities"):
        ece([1.2], [True])
