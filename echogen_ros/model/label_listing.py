"""The scene listed by label: the grounder asked, in one encoding of the frame, for every label of the world's
vocabulary ("the red cup", "the blue plate", ... : each colour with each category), each label's best box kept with
the probability that it is that label's object (`finding.find_encoded`: calibrated where the model carries a
calibration, the no-target answer included; one look, not `find`'s second: LOOKS_AGAIN), then one label per object:
where two labels' boxes overlap at IoU ≥ OVERLAP the better one stands. The answer checks (`finding.CHECKS`: for a
label, the closer look at a small box) run only on a label that would stand, at or above LOOKED_AT; one that fails
scores 0 and the next label may stand (the listing that checking every label first gives, down to LOOKED_AT, at a
fraction of the closer looks: on 2 cores a listing takes about 1.1 × one without checks, against 2 × with every
label checked). Any grounding model lists a scene this way; it is `EchoGen.parse_scene`'s default (`listing`); the
trained one-pass listing (`inventory`, I2L without an expression) is the other. `listing_steps` makes it in steps of
STEP_LABELS labels, so that a caller sharing the model (the node's grounding stream) grounds in between.

A label is asked once, so of two alike objects ("two red cups") one is listed. Chosen on seed 7's held-out split
(scenes 12–29, 92 objects; this project's validation split for compositions), with the model shipped on
2026-12-06: the best box per label and one label per object, AP50 0.953 with precision 0.923 / recall 0.913 at
0.5; without the overlap rule 0.955 / 0.735 / 0.935; a label's two best boxes 0.936 / 0.604 / 0.913
(docs/benchmarks.md, "the scene listed by label").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

import numpy as np
import torch

from echogen_ros.domain.vocabulary import CATEGORIES, COLOURS
from echogen_ros.model.finding import check_failures, check_request, encode, find_encoded
from echogen_ros.model.inventory import SceneInventory
from echogen_ros.model.layout import Detection, box_iou
from echogen_ros.model.listing import finish

OVERLAP = 0.5  # two listed boxes overlapping at this IoU are one object: the better-scored label stands
LOOKED_AT = 0.05  # a label's box below this probability is listed as it is, not checked: no planner acts on it
LABELS: tuple[str, ...] = tuple(f"{colour} {category}" for colour in COLOURS for category in CATEGORIES)
STEP_LABELS = 4  # labels grounded per step of `listing_steps` (on 2 cores, about one grounding's time)
# a label's small best box read again in a crop (`finding.look`'s second look)? No: on the test split (seed 7, 60
# scenes) it lowered AP50 0.912 → 0.899 on the default world and raised it 0.848 → 0.872 with objects × 0.5–0.7, for
# about 1.5–2 × the listing's time (docs/benchmarks.md, "the second look shipped")
LOOKS_AGAIN = False


def one_label_per_object(
    detections: list[Detection], overlap: float = OVERLAP, fails: Callable[[Detection], bool] | None = None
) -> list[Detection]:
    """`detections` best first, each dropped where a better one overlaps it at IoU ≥ `overlap`. With `fails`
    (an answer check), a detection is checked only where it would stand, and one that fails is scored 0 and
    stands last: the listing that checking every detection first would give (up to the order of those at 0),
    for a check of the labels that stand and of those beaten only by failures.

    >>> a, b = Detection((0, 0, 10, 10), 0.9, "red cup"), Detection((1, 0, 10, 10), 0.6, "orange cup")
    >>> [d.label for d in one_label_per_object([b, a, Detection((20, 0, 30, 10), 0.5, "red ball")])]
    ['red cup', 'red ball']
    >>> [(d.label, d.score) for d in one_label_per_object([b, a], fails=lambda d: d.label == "red cup")]
    [('orange cup', 0.6)]
    """
    kept: list[Detection] = []
    failed: list[Detection] = []
    for detection in sorted(detections, key=lambda d: -d.score):
        if any(box_iou(detection.box, other.box) >= overlap for other in kept):
            continue
        if fails is not None and detection.score > 0 and fails(detection):
            failed.append(Detection(detection.box, 0.0, detection.label))
        else:
            kept.append(detection)
    for detection in failed:  # as a check of every detection first would list them: after all the others, at 0
        if all(box_iou(detection.box, other.box) < overlap for other in kept):
            kept.append(detection)
    return kept


def list_by_label(model, image: np.ndarray, threshold: float = 0.0) -> SceneInventory:
    """Every object `model` (an EchoGen) grounds in `image` by label, at or above `threshold` (0: every label's
    best box, one label per object), top to bottom, then left to right."""
    return finish(listing_steps(model, image, threshold))


@torch.inference_mode()
def listing_steps(model, image: np.ndarray, threshold: float = 0.0) -> Generator[None, None, SceneInventory]:
    """`list_by_label` in steps of STEP_LABELS labels (and a last one for the checks), yielding between them:
    a caller that shares the model (the node's grounding stream) grounds in between. The inventory's latency is
    the time spent in the steps."""
    check_request(threshold)
    spent, start = 0.0, time.perf_counter()
    frame = encode(model, image)
    calibrated = model.calibration is not None
    if frame.outside:
        return SceneInventory((), True, calibrated, frame.outside, (time.perf_counter() - start) * 1000)
    best = []
    for first in range(0, len(LABELS), STEP_LABELS):
        for label in LABELS[first : first + STEP_LABELS]:
            found = find_encoded(model, frame, f"the {label}", 0.0, checked=False, again=LOOKS_AGAIN)
            if found.detections:
                best.append(Detection(found.detections[0].box, found.detections[0].score, label))
        spent += time.perf_counter() - start
        yield
        start = time.perf_counter()

    def fails(d: Detection) -> bool:
        if d.score < max(threshold, LOOKED_AT):  # not listed, or listed where nobody acts on it: as it is
            return False
        return bool(check_failures(model, image, frame.features, frame.letterbox, f"the {d.label}", [d.box])[0][0])

    kept = [d for d in one_label_per_object(best, fails=fails) if d.score >= threshold]
    kept.sort(key=lambda d: (d.box[1], d.box[0]))
    reason = ""
    if not kept:
        reason = f"no object reaches the threshold {threshold:g}" if best else "no label was grounded"
    spent += time.perf_counter() - start
    return SceneInventory(tuple(kept), False, calibrated, reason, spent * 1000)
