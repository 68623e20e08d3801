"""Verifying a frame against a goal: each relation judged geometrically, with a score and a reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from echogen_ros.domain.relations import Truth, relation_margin, relation_score, relation_truth
from echogen_ros.model.layout import Detection, Layout, assign_boxes, box_iou, label_groups
from echogen_ros.planning.commands import Command
from echogen_ros.planning.grounders import Grounder, is_ambiguous

SATISFIED, NOT_SATISFIED, CANNOT_TELL = "satisfied", "not_satisfied", "cannot_tell"
MIN_SCORE = 0.3  # a grounding below this score means "not found"
LAYOUT_IOU = 0.5  # an object is where the goal layout wants it when IoU ≥ this


@dataclass(frozen=True)
class Verdict:
    status: str  # satisfied | not_satisfied | cannot_tell
    score: float  # 0..1
    reason: str
    relation: str | None = None
    target: str = ""
    anchors: tuple[str, ...] = ()

    @property
    def satisfied(self) -> bool:
        return self.status == SATISFIED

    def to_json(self) -> dict:
        return {**asdict(self), "anchors": list(self.anchors), "satisfied": self.satisfied}


def judge(
    command: Command,
    target: Detection | None,
    anchors: Sequence[Detection | None],
    height: int,
    min_score: float = MIN_SCORE,
) -> Verdict:
    """The verdict for a command given the grounded target and anchors (None: not found)."""
    base = {"relation": command.relation, "target": command.target, "anchors": command.anchors}
    found = target is not None and target.score >= min_score
    if command.action == "find":
        if found:
            return Verdict(SATISFIED, target.score, f"found {command.target}", **base)
        return Verdict(NOT_SATISFIED, 1 - (target.score if target else 0.0), f"{command.target} not found", **base)
    if command.action == "pick":
        if found:
            return Verdict(NOT_SATISFIED, target.score, f"{command.target} is still in view", **base)
        return Verdict(
            SATISFIED, 1 - (target.score if target else 0.0), f"{command.target} is no longer in view", **base
        )
    missing = [
        p for p, d in zip((command.target, *command.anchors), (target, *anchors)) if d is None or d.score < min_score
    ]
    if missing:
        return Verdict(CANNOT_TELL, 0.0, f"cannot find {', '.join(missing)} in the frame", **base)
    boxes = [d.box for d in anchors]
    margin = relation_margin(command.relation, target.box, boxes, height)
    truth = relation_truth(command.relation, target.box, boxes, height)
    where = f"{command.relation} {' and '.join(command.anchors)}"
    detail = f"(margin {margin:.2f}; >= 1 is clear, <= -1 clearly not)"
    if truth is Truth.TRUE:
        return Verdict(SATISFIED, relation_score(margin), f"{command.target} is {where} {detail}", **base)
    if truth is Truth.FALSE:
        return Verdict(NOT_SATISFIED, relation_score(margin), f"{command.target} is not {where} {detail}", **base)
    return Verdict(
        CANNOT_TELL, relation_score(margin), f"too close to call whether {command.target} is {where} {detail}", **base
    )


def ground_phrase(grounder: Grounder, image: np.ndarray, phrase: str) -> tuple[Detection | None, bool]:
    """The best detection of `phrase` (None if none) and whether a close rival makes it ambiguous."""
    detections = grounder.ground(image, phrase, top_k=2)
    return (detections[0] if detections else None), is_ambiguous(detections)


def verify_command(grounder: Grounder, image: np.ndarray, command: Command, min_score: float = MIN_SCORE) -> Verdict:
    target, target_ambiguous = ground_phrase(grounder, image, command.target)
    anchors, ambiguous = [], [command.target] if target_ambiguous else []
    for phrase in command.anchors:
        detection, rival = ground_phrase(grounder, image, phrase)
        anchors.append(detection)
        if rival:
            ambiguous.append(phrase)
    verdict = judge(command, target, anchors, image.shape[0], min_score)
    all_found = all(d is not None and d.score >= min_score for d in (target, *anchors))
    if ambiguous and command.action == "put" and all_found:  # a missing object is the reason, not a rival
        names = ", ".join(ambiguous)
        reason = f"ambiguous: {names} {'matches' if len(ambiguous) == 1 else 'match'} more than one object, so " \
                 f"which one is meant cannot be told; as grounded, {verdict.reason}"  # fmt: skip
        return Verdict(CANNOT_TELL, verdict.score, reason, verdict.relation, verdict.target, verdict.anchors)
    return verdict


def verify_layout(
    grounder: Grounder, image: np.ndarray, layout: Layout, min_score: float = MIN_SCORE
) -> tuple[Verdict, list[float]]:
    """Is every object of a goal layout where the layout puts it? (IoU ≥ 0.5 each.) A label the layout names
    n times (two red cups) is grounded once for its n best distinct boxes, matched to those objects by IoU."""
    ious = [0.0] * len(layout.objects)
    for label, where in label_groups([o.label for o in layout.objects]).items():
        found = [d for d in grounder.ground(image, label, top_k=len(where)) if d.score >= min_score]
        match = assign_boxes([layout.objects[i].box for i in where], [d.box for d in found])
        for i, j in zip(where, match):
            ious[i] = box_iou(layout.objects[i].box, found[j].box) if j is not None else 0.0
    misplaced = [o.label for o, iou in zip(layout.objects, ious) if iou < LAYOUT_IOU]
    score = float(np.mean(ious)) if ious else 0.0
    if misplaced:
        return Verdict(NOT_SATISFIED, score, f"not where the goal puts them: {', '.join(misplaced)}"), ious
    return Verdict(SATISFIED, score, "every object is where the goal layout puts it"), ious
