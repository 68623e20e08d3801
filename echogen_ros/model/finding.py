"""What a planner receives for a phrase: whether the referent was found, how sure the model is (a calibrated
probability, `confidence`), the boxes it may act on, and when it was not found, why: words it did not
understand, a frame unlike any it was trained on, nothing there that the phrase names, or not sure enough.

A small best box (its side below the model's `second_look_below` of the frame's) is read again in a crop around it,
in which the objects appear at least twice as large, and the crop's best box is the answer (`look`, the second look;
docs/benchmarks.md, "the second look shipped"). A model looks again where its calibration was fitted so (the bound
is in its `fitted_on`: `echogen-train calibrate --second-look-below`); one calibrated without it, or not at all,
looks once.

A box is returned only when its probability reaches the threshold: a box nobody should act on is worse
than no box. A box must also pass the answer checks (`check_failures`): for a phrase with a relation ("the cup
left of the plate"), the relation check (`relation_check`: the relation is not clearly false with every box its
anchor may be); for an ordinal counted from a side ("the third cup from the left"), the ordinal check
(`ordinal_check`: two cups are found left of it); for a bare category ("the cup"), the category check
(`category_check`: no other category, "the bowl", claims the box more); for a small box found for a phrase
that names only an object ("the red cup"), the closer-look check (`closer_look`: grounded again in a crop around
it, the phrase is found there, on that box). A box that fails one gets probability 0 and the check says why."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from echogen_ros.domain import words
from echogen_ros.domain.clauses import ordinal_clause, relation_clause
from echogen_ros.model import category_check, closer_look, generation, grounding, ordinal_check, relation_check
from echogen_ros.model.confidence import Calibration, Signals
from echogen_ros.model.layout import DISTINCT_IOU, Detection, box_iou, distinct

DEFAULT_THRESHOLD = 0.5  # the probability a box must reach to be returned (the node's `score_threshold`)
ABSENT = 0.5  # no-target probability above which "nothing here is what you name" is the reason given
# the bound of the second look that `echogen-train calibrate` fits with, unless told otherwise. Chosen on the selection
# splits with a calibration fitted for each way (experiments.second_look; docs/benchmarks.md, "The second look"): below
# 0.08 of the side, with the larger no-target probability, small objects (test, × 0.5–0.7) Acc@0.5 0.859 → 0.892 with
# no-target answers not found 0.952 → 0.955 / 0.950 (test / seed 7); below 0.11, 0.913 there but no-target 0.932
SECOND_LOOK_BELOW = 0.08  # the best box's side share under which it is looked at again


@dataclass(frozen=True)
class Finding:
    phrase: str  # as asked
    found: bool
    confidence: float  # P(the best box is the referent): calibrated when `calibrated`, else the raw score
    detections: tuple[Detection, ...] = ()  # the boxes at or above the threshold, best first (score: as confidence)
    unknown_words: tuple[str, ...] = ()
    nearest: dict[str, str] = field(default_factory=dict)  # unknown word → the nearest known one
    out_of_domain: bool = False
    calibrated: bool = True
    reason: str = ""  # why not found ("" when found)
    latency_ms: float = 0.0

    def to_json(self) -> dict:
        return {
            "phrase": self.phrase,
            "found": self.found,
            "confidence": round(self.confidence, 4),
            "detections": [d.to_json() for d in self.detections],
            "unknown_words": list(self.unknown_words),
            "nearest": dict(self.nearest),
            "out_of_domain": self.out_of_domain,
            "calibrated": self.calibrated,
            "reason": self.reason,
            "latency_ms": round(self.latency_ms, 2),
        }


def candidates(model, features: torch.Tensor, letterbox, text: str, k: int) -> tuple[list[Detection], float]:
    """Up to k distinct boxes for `text` in image `features` (1, N, D), best first (score: the raw geometric
    mean of bin probabilities), and the no-target probability."""
    ids = torch.tensor([model.scheme.i2l_prompt(model.expression_ids(text))], device=features.device)
    embeds = generation.embed(model.model, ids, features)
    beams, absent = generation.beam_search(model.model, model.scheme, embeds, k + grounding.EXTRA_BEAMS)
    return distinct([model.detection(letterbox, coords, score, text) for _, score, coords in beams])[:k], absent


def signals(found: Sequence[Detection], absent: float, frame: tuple[int, int]) -> list[Signals]:
    """Each candidate's signals: its score, its margin over the best other candidate, the no-target
    probability, its side as a share of the frame's (`frame`: height, width in pixels)."""
    out = []
    for i, d in enumerate(found):
        rival = max((o.score for j, o in enumerate(found) if j != i), default=0.0)
        out.append(Signals(d.score, 1.0 - rival / max(d.score, 1e-30), absent, side_share(d.box, frame)))
    return out


def side_share(box, frame: tuple[int, int]) -> float:
    """The side of `box` (x1, y1, x2, y2) as a share of the frame's: √(its area / the frame's), in [0, 1]."""
    x1, y1, x2, y2 = box
    area = max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
    return min(math.sqrt(area / max(frame[0] * frame[1], 1)), 1.0)


def outside_domain(model, features: torch.Tensor) -> str:
    """Why the frame of image `features` (1, N, D) is unlike the scenes the model was trained on (its domain
    check, `model.domain`), or "" when it is not (or the model has no domain check)."""
    domain = model.domain
    distance = domain.distance(features) if domain is not None else None
    if distance is None or distance <= domain.threshold:
        return ""
    return (f"the frame does not look like the scenes this model was trained on (domain distance "
            f"{distance:.1f} > {domain.threshold:.1f})")  # fmt: skip


def probability(calibration: Calibration | None, s: Signals) -> float:
    return calibration.probability(s) if calibration is not None else s.score


def relation_failures(model, image: np.ndarray, features: torch.Tensor, letterbox, text: str, boxes) -> list[str]:
    """`relation_check.failures` of `boxes` found for `text` (the vocabulary's words) in `image` (encoded:
    `features`): its anchors grounded there (up to ANCHOR_CANDIDATES boxes each, the best and those whose raw
    score reaches ANCHOR_RATIO of its); all "" when `text` has no relation clause."""
    clause = relation_clause(text)
    if clause is None or not boxes:
        return [""] * len(boxes)
    anchors = []
    for phrase in clause.anchors:
        found, _ = candidates(model, features, letterbox, phrase, relation_check.ANCHOR_CANDIDATES)
        anchors.append([d.box for d in found if d.score >= relation_check.ANCHOR_RATIO * found[0].score])
    return relation_check.failures(clause, boxes, anchors, image.shape[0])


def ordinal_failures(model, image: np.ndarray, features: torch.Tensor, letterbox, text: str, boxes) -> list[str]:
    """`ordinal_check.failures` of `boxes` found for `text` (the vocabulary's words) in `image` (encoded:
    `features`): the category's objects counted there (each colour's best box whose raw score reaches
    COUNT_SCORE, unless a rival of its colour claims it: `ordinal_check.not_outscored`); all "" when `text` has no
    ordinal counted from a side, or one the check does not count."""
    ordinal = ordinal_clause(text)
    phrases = ordinal_check.counted_phrases(ordinal) if ordinal is not None and boxes else []
    if not phrases:
        return [""] * len(boxes)
    best = [candidates(model, features, letterbox, phrase, 1)[0][0] for phrase in phrases]
    counted = [d for d in best if d.score >= ordinal_check.COUNT_SCORE]
    asked = ordinal_check.in_question(ordinal, boxes, counted)
    rivals = greedy_boxes(model, features, letterbox, ordinal_check.rival_phrases(asked))
    return ordinal_check.failures(text, ordinal, boxes, ordinal_check.not_outscored(counted, rivals))


def greedy_boxes(model, features: torch.Tensor, letterbox, phrases: Sequence[str]) -> list[Detection]:
    """Each phrase's greedy box in image `features` (1, N, D), all in one batch (a check asks many at once;
    a batch of 56 costs about 4 single groundings on 2 cores), with its raw score (`grounding.raw_scores`, as
    `candidates` scores)."""
    if not phrases:
        return []
    ids, mask = grounding.prompt_batch(model.scheme, [model.expression_ids(p) for p in phrases])
    ids, mask = ids.to(features.device), mask.to(features.device)
    _, probs, coords, _ = grounding.locate(model.model, model.scheme, features.expand(len(phrases), -1, -1), ids, mask)
    scores = grounding.raw_scores(probs).tolist()
    return [model.detection(letterbox, c, s, p) for p, c, s in zip(phrases, coords.tolist(), scores)]


def category_failures(model, image: np.ndarray, features: torch.Tensor, letterbox, text: str, boxes) -> list[str]:
    """`category_check.failures` of `boxes` found for `text` (the vocabulary's words) in `image` (encoded:
    `features`): the phrase and the other categories grounded greedily in one batch; all "" when `text` is not a
    bare category. (`image`: unused; the check reads the encoded frame.)"""
    category = category_check.checked_category(text)
    if category is None or not boxes:
        return [""] * len(boxes)
    own, *rivals = greedy_boxes(model, features, letterbox, [text, *category_check.rival_phrases(category)])
    return category_check.failures(own, boxes, rivals)


def closer(model, image: np.ndarray, text: str, box, k: int) -> tuple[list[Detection], float] | None:
    """Up to k boxes for `text` grounded again in the crop `closer_look.window` of `image` around `box` (mapped
    back to the frame, best first) and the crop's no-target probability; None where `box`'s side is not below
    closer_look.SMALL of the frame's, or the crop would be a few pixels."""
    share = side_share(box, image.shape[:2])
    if share >= closer_look.SMALL:
        return None
    x0, y0, x1, y1 = closer_look.window(box, share, image.shape[:2])
    if min(x1 - x0, y1 - y0) < closer_look.SMALLEST_CROP:  # a frame of a few pixels: nothing to look closer at
        return None
    pixels, crop_box = model.pixels(np.ascontiguousarray(image[y0:y1, x0:x1]))
    found, absent = candidates(model, generation.image_features(model.model, pixels), crop_box, text, k)
    return [Detection((b[0] + x0, b[1] + y0, b[2] + x0, b[3] + y0), d.score, d.label)
            for d in found for b in [d.box]], absent  # fmt: skip


def look(model, frame: Encoded, text: str, k: int, again: bool = True) -> tuple[list[Detection], float]:
    """Up to k distinct boxes for `text` (the vocabulary's words) in an encoded frame, best first, and the
    no-target probability: `candidates`, then, where the model looks again (`second_look_below`, unless `again` is
    False) and the best box's side is below that share of the frame's, the second look (`closer`): the best box is
    read again in a crop around it, where the objects appear twice as large or more (the model sees a frame at
    128 px), and the crop's best box takes its place; the no-target probability is the larger of the two looks';
    the other boxes stay the whole frame's, those that are not the new best."""
    found, absent = candidates(model, frame.features, frame.letterbox, text, k)
    below = getattr(model, "second_look_below", None) if again else None
    if below is None or not found or side_share(found[0].box, frame.image.shape[:2]) >= below:
        return found, absent
    crop = closer(model, frame.image, text, found[0].box, 1)
    if crop is None:
        return found, absent
    (best,), crop_absent = crop
    return looked_again(best, found, k), max(absent, crop_absent)


def looked_again(best: Detection, found: Sequence[Detection], k: int) -> list[Detection]:
    """The second look's `best` box first, then the whole frame's boxes `found` that are not it: at most k."""
    return [best, *[d for d in found if box_iou(d.box, best.box) < DISTINCT_IOU]][:k]


def closer_look_failures(model, image: np.ndarray, features: torch.Tensor, letterbox, text: str, boxes) -> list[str]:
    """`closer_look.failure` of each of `boxes` found for `text` (the vocabulary's words) in `image` whose side
    is below closer_look.SMALL of the frame's: `text` grounded again in the crop `closer_look.window` (`closer`:
    its best box and its no-target probability); all "" when `text` names more than an object
    (`closer_look.looked_at`). (`features`, `letterbox`: unused; the crop is encoded on its own.)"""
    out = [""] * len(boxes)
    if not closer_look.looked_at(text):
        return out
    for i, box in enumerate(boxes):
        again = closer(model, image, text, box, 1)
        if again is not None:
            out[i] = closer_look.failure(text, box, again[0][0].box, again[1])
    return out


# the answer checks, in the order asked (a box failing several is said to fail the first; the newest comes last, so
# that leaving it out in `experiments.answer_checks` gives exactly the answers before it). They read raw scores,
# never the calibration: a check decides the same for a model with or without one, so `echogen-train calibrate`
# (which measures before any calibration is read) fits on exactly the answers that pass them at run time.
CHECKS = {"relation": relation_failures, "ordinal": ordinal_failures, "closer_look": closer_look_failures,
          "category": category_failures}  # fmt: skip


def check_failures(model, image: np.ndarray, features: torch.Tensor, letterbox, text: str, boxes
                   ) -> list[tuple[str, str]]:  # fmt: skip
    """For each of `boxes` found for `text` in `image` (encoded: `features`, `letterbox`), the first answer check
    of CHECKS it fails and why, or ("", "") where it passes them all."""
    out = [("", "")] * len(boxes)
    for name, check in CHECKS.items():
        said = check(model, image, features, letterbox, text, boxes)
        out = [was if was[0] or not why else (name, why) for was, why in zip(out, said)]
    return out


@dataclass(frozen=True)
class Encoded:
    """A frame read once for any number of phrases: its image features (1, N, D), its letterbox, and why it is
    out of the model's domain ("" when it is not)."""

    image: np.ndarray
    features: torch.Tensor
    letterbox: object
    outside: str


@torch.inference_mode()
def encode(model, image: np.ndarray) -> Encoded:
    pixels, letterbox = model.pixels(image)
    features = generation.image_features(model.model, pixels)
    return Encoded(image, features, letterbox, outside_domain(model, features))


@torch.inference_mode()
def find_encoded(
    model,
    frame: Encoded,
    phrase: str,
    threshold: float = DEFAULT_THRESHOLD,
    top_k: int = 1,
    checked: bool = True,
    again: bool = True,
) -> Finding:
    """`phrase`'s `Finding` in an encoded frame (latency not set); with `checked` False, the answer checks are
    left to the caller (`label_listing` checks only the labels that stand); `again`: as for `look`."""
    reading = words.read(phrase)
    calibration = model.calibration
    heard = {"unknown_words": reading.unknown, "nearest": reading.nearest, "calibrated": calibration is not None}
    if reading.problem:
        return Finding(phrase, False, 0.0, reason=reading.problem, **heard)
    if frame.outside:
        return Finding(phrase, False, 0.0, out_of_domain=True, reason=frame.outside, **heard)
    found, absent = look(model, frame, reading.text, top_k + 1, again)
    scores = [probability(calibration, s) for s in signals(found, absent, frame.image.shape[:2])][:top_k]
    boxes = [d.box for d in found[:top_k]]
    failed = ([why for _, why in check_failures(model, frame.image, frame.features, frame.letterbox, reading.text,
                                                boxes)]
              if checked else [""] * len(boxes))  # fmt: skip
    scores = [0.0 if why else p for p, why in zip(scores, failed)]
    kept = tuple(Detection(d.box, p, d.label) for d, p in zip(found, scores) if p >= threshold)
    confidence = scores[0]
    reason = ""
    if not kept:
        reason = (failed[0] if failed[0]  # the check that decided (p = 0) says the most
                  else f"nothing here is {reading.text!r} (no-target probability {absent:.2f})" if absent > ABSENT
                  else f"not sure enough: probability {confidence:.2f} < {threshold:g}")  # fmt: skip
    return Finding(phrase, bool(kept), confidence, kept, reason=reason, **heard)


def check_request(threshold: float, top_k: int = 1) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")


def find_all(
    model,
    image: np.ndarray,
    phrases: Sequence[str],
    threshold: float = DEFAULT_THRESHOLD,
    top_k: int = 1,
) -> list[Finding]:
    """A `Finding` for each phrase in one frame (encoded once, checked against the training domain once)."""
    check_request(threshold, top_k)
    start = time.perf_counter()
    frame = encode(model, image)
    out = [find_encoded(model, frame, phrase, threshold, top_k) for phrase in phrases]
    latency = (time.perf_counter() - start) * 1000
    return [replace(f, latency_ms=latency) for f in out]
