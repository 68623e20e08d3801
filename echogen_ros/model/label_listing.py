"""The scene listed by label: the grounder asked, in one encoding of the frame, for every label of the world's
vocabulary ("the red cup", "the blue plate", ... : each colour with each category), each label's best box kept
with the probability that it is that label's object (`finding.find_all`: calibrated where the model carries a
calibration, the no-target answer included), then one label per object: where two labels' boxes overlap at IoU
≥ OVERLAP the better one stands. Any grounding model lists a scene this way; it is `EchoGen.parse_scene`'s
default (`listing`); the trained one-pass listing (`inventory`, I2L without an expression) is the other.

A label is asked once, so of two alike objects ("two red cups") one is listed. Chosen on seed 7's held-out split
(scenes 12–29, 92 objects; this project's validation split for compositions), with the model shipped on
2026-12-06: the best box per label and one label per object, AP50 0.953 with precision 0.923 / recall 0.913 at
0.5; without the overlap rule 0.955 / 0.735 / 0.935; a label's two best boxes 0.936 / 0.604 / 0.913
(docs/benchmarks.md, "the scene listed by label").
"""

from __future__ import annotations

import time

import numpy as np

from echogen_ros.domain.vocabulary import CATEGORIES, COLOURS
from echogen_ros.model.finding import find_all
from echogen_ros.model.inventory import SceneInventory
from echogen_ros.model.layout import Detection, box_iou

OVERLAP = 0.5  # two listed boxes overlapping at this IoU are one object: the better-scored label stands
LABELS: tuple[str, ...] = tuple(f"{colour} {category}" for colour in COLOURS for category in CATEGORIES)


def one_label_per_object(detections: list[Detection], overlap: float = OVERLAP) -> list[Detection]:
    """`detections` best first, each dropped where a better one overlaps it at IoU ≥ `overlap`.

    >>> a, b = Detection((0, 0, 10, 10), 0.9, "red cup"), Detection((1, 0, 10, 10), 0.6, "orange cup")
    >>> [d.label for d in one_label_per_object([b, a, Detection((20, 0, 30, 10), 0.5, "red ball")])]
    ['red cup', 'red ball']
    """
    kept: list[Detection] = []
    for detection in sorted(detections, key=lambda d: -d.score):
        if all(box_iou(detection.box, other.box) < overlap for other in kept):
            kept.append(detection)
    return kept


def list_by_label(model, image: np.ndarray, threshold: float = 0.0) -> SceneInventory:
    """Every object `model` (an EchoGen) grounds in `image` by label, at or above `threshold` (0: every label's
    best box, one label per object), top to bottom, then left to right."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold}")
    start = time.perf_counter()
    findings = find_all(model, image, [f"the {label}" for label in LABELS], 0.0)
    calibrated = model.calibration is not None
    if findings and findings[0].out_of_domain:
        return SceneInventory((), True, calibrated, findings[0].reason, (time.perf_counter() - start) * 1000)
    best = [Detection(f.detections[0].box, f.detections[0].score, label)
            for label, f in zip(LABELS, findings) if f.detections]  # fmt: skip
    kept = [d for d in one_label_per_object(best) if d.score >= threshold]
    kept.sort(key=lambda d: (d.box[1], d.box[0]))
    reason = ""
    if not kept:
        reason = f"no object reaches the threshold {threshold:g}" if best else "no label was grounded"
    return SceneInventory(tuple(kept), False, calibrated, reason, (time.perf_counter() - start) * 1000)
