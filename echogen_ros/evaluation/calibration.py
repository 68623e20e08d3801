"""How well confidences say whether an answer is right: the AUROC of right against wrong answers (does a
higher confidence mean right more often?), the expected calibration error (does a confidence of p mean right
a fraction p of the time?) and the reliability table behind it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BINS = 10  # equal-width confidence bins, as ECE is usually reported


def auroc(confidence: Sequence[float], right: Sequence[bool]) -> float:
    """The probability that a right answer is more confident than a wrong one (ties count half); nan when
    either kind is missing.

    >>> auroc([0.9, 0.8, 0.3], [True, True, False]), auroc([0.5, 0.5], [True, False])
    (1.0, 0.5)
    """
    scores, labels = np.asarray(confidence, dtype=np.float64), np.asarray(right, dtype=bool)
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return float("nan")
    ranks = _average_ranks(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = values.argsort(kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end + 1) / 2  # 1-based average rank of a run of ties
            start = end
    return ranks


def reliability(confidence: Sequence[float], right: Sequence[bool], bins: int = BINS) -> list[dict]:
    """Per equal-width confidence bin that holds answers: its range, count, mean confidence and accuracy."""
    scores, labels = np.asarray(confidence, dtype=np.float64), np.asarray(right, dtype=bool)
    if np.any((scores < 0) | (scores > 1)):
        raise ValueError("confidences must be probabilities in [0, 1]")
    index = np.minimum((scores * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        held = index == b
        if held.any():
            rows.append({"low": b / bins, "high": (b + 1) / bins, "count": int(held.sum()),
                         "confidence": float(scores[held].mean()), "accuracy": float(labels[held].mean())})  # fmt: skip
    return rows


def ece(confidence: Sequence[float], right: Sequence[bool], bins: int = BINS) -> float:
    """Expected calibration error: the count-weighted mean |accuracy − confidence| over the bins.

    >>> ece([0.8] * 5, [True, True, True, True, False]), ece([0.8] * 5, [True] * 5)
    (0.0, 0.2)
    """
    rows = reliability(confidence, right, bins)
    total = sum(r["count"] for r in rows)
    return round(sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / total, 12) if total else 0.0
