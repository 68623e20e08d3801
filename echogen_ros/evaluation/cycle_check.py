"""The cycle check as a failure detector: does it fail the pictures the generator drew wrong?

"Drawn wrong" is the independent detector's verdict, never the model's: a scene whose detector recall (layout
objects found with their kind at IoU ≥ 0.5) is below WRONG_RECALL. The check fails a scene when its mean
cycle IoU is below the threshold. Precision: the share of failed scenes that were drawn wrong; recall: the
share of scenes drawn wrong that it failed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from echogen_ros.model.layout import box_iou

WRONG_RECALL = 0.5  # a scene is drawn wrong when the detector finds fewer than half its objects, kind and place
MATCH_IOU = 0.5
Box = Sequence[float]
SWEEP = tuple(round(t, 2) for t in np.arange(0.40, 0.951, 0.05))  # thresholds reported to choose one by


def scene_recall(truth: Sequence[tuple[str, Box]], found: Sequence[tuple[str, Box, float]]) -> float:
    """Share of the layout's objects (category, box) a detection (category, box, score) finds: the same
    category at IoU ≥ 0.5, each detection used once, best scores first.

    >>> scene_recall([("cup", (0, 0, 10, 10)), ("ball", (20, 0, 30, 10))], [("cup", (1, 0, 10, 10), 0.9)])
    0.5
    """
    if not truth:
        return 1.0
    free = list(range(len(truth)))
    for category, box, _ in sorted(found, key=lambda f: -f[2]):
        ious = [(box_iou(truth[i][1], box), i) for i in free if truth[i][0] == category]
        best = max(ious, default=(0.0, -1))
        if best[0] >= MATCH_IOU:
            free.remove(best[1])
    return 1 - len(free) / len(truth)


def failure_detection(scenes: Sequence[tuple[float, float]], threshold: float) -> dict:
    """Precision and recall of 'cycle mean IoU < threshold' as a detector of scenes drawn wrong, from each
    scene's (cycle mean IoU, detector recall); precision is None when the check fails nothing.

    >>> failure_detection([(0.3, 0.0), (0.9, 1.0), (0.4, 1.0), (0.9, 0.2)], 0.5)["precision"]
    0.5
    """
    cycle, recall = (np.array([s[i] for s in scenes], dtype=float) for i in (0, 1))
    wrong, failed = recall < WRONG_RECALL, cycle < threshold
    caught = int((wrong & failed).sum())
    precision = caught / int(failed.sum()) if failed.any() else None
    found = caught / int(wrong.sum()) if wrong.any() else None
    return {"threshold": threshold, "scenes": len(scenes), "drawn_wrong": int(wrong.sum()),
            "failed": int(failed.sum()), "precision": precision, "recall": found}  # fmt: skip


def report(scenes: Sequence[tuple[float, float]], threshold: float) -> dict:
    """`failure_detection` at `threshold` and over SWEEP (to choose a threshold by, on val or test only), and
    each scene's (cycle mean IoU, detector recall)."""
    return {**failure_detection(scenes, threshold), "wrong_recall_bar": WRONG_RECALL,
            "sweep": [failure_detection(scenes, t) for t in SWEEP],
            "per_scene": [[round(c, 4), round(r, 4)] for c, r in scenes]}  # fmt: skip


def failed_share(scenes: Sequence[tuple[float, float]], threshold: float) -> float:
    """Share of scenes the check fails (for a control, all of whose scenes are drawn wrong: it should be 1)."""
    return float(np.mean([cycle < threshold for cycle, _ in scenes])) if scenes else 0.0
