"""The plan: instruction + frame → grounded target/anchors → goal box → goal layout → verdict now."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from echogen_ros.model.layout import Detection, Layout, LayoutObject, box_iou
from echogen_ros.planning.commands import Command, PlanningError, parse_command
from echogen_ros.planning.goal import place_goal
from echogen_ros.planning.grounders import Grounder
from echogen_ros.planning.verify import Verdict, ground_phrase, judge

Box = tuple[float, float, float, float]


@dataclass
class Plan:
    command: Command
    width: int
    height: int
    target: Detection
    anchors: list[Detection]
    goal_box: Box | None  # None for "pick" (the target leaves the table) and "find" (nothing moves)
    goal_layout: Layout
    verdict: Verdict  # does the current frame already satisfy the command?
    ambiguities: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "action": self.command.action,
            "target": {"phrase": self.command.target, "box": _round(self.target.box),
                       "goal_box": _round(self.goal_box) if self.goal_box else None,
                       "score": round(self.target.score, 4)},
            "anchors": [{"phrase": p, "box": _round(d.box), "score": round(d.score, 4)}
                        for p, d in zip(self.command.anchors, self.anchors)],
            "relation": self.command.relation,
            "goal_layout": self.goal_layout.to_json(),
            "satisfied_now": self.verdict.satisfied,
            "verdict": self.verdict.status,
            "verdict_reason": self.verdict.reason,
            "ambiguities": self.ambiguities,
        }  # fmt: skip


def _round(box) -> list[float]:
    return [round(float(v), 2) for v in box]


def _caption(labels: Sequence[str]) -> str:
    names = [label[4:] if label.startswith("the ") else label for label in labels]
    return "a table with " + ", ".join(names) + "."


def plan(
    image: np.ndarray,
    instruction: str | Command,
    grounder: Grounder,
    obstacles: Sequence[LayoutObject] = (),
) -> Plan:
    """Plan `instruction` in `image`. `obstacles` are other known objects (label + box) the goal box
    must avoid and the goal layout keeps; the target and anchors are found by `grounder`. PlanningError
    when one is not found (with the grounder's reason: unknown words, out of domain, not there, not sure)."""
    command = instruction if isinstance(instruction, Command) else parse_command(instruction)
    height, width = image.shape[:2]
    grounded, ambiguities = [], []
    for phrase in (command.target, *command.anchors):
        found = ground_phrase(grounder, image, phrase)
        if found.detection is None:
            raise PlanningError(f"cannot find {phrase!r} in the image" + (f": {found.why}" if found.why else ""))
        if found.ambiguous:
            ambiguities.append(f"{phrase!r} matches more than one object; using the best-scoring one")
        grounded.append(found.detection)
    target, anchors = grounded[0], grounded[1:]
    verdict = judge(command, target, anchors, height)
    known = [target.box, *(a.box for a in anchors)]
    others = [o for o in obstacles if all(box_iou(o.box, k) < 0.7 for k in known)]
    goal_box = None
    if command.action == "put":
        goal_box = place_goal(command.relation, target.box, [a.box for a in anchors], [o.box for o in others],
                              width, height)  # fmt: skip
    objects = []
    if command.action != "pick":
        objects.append(LayoutObject(command.target, goal_box or target.box))
    objects += [LayoutObject(p, a.box) for p, a in zip(command.anchors, anchors)] + list(others)
    if not objects:
        raise PlanningError("the goal scene is empty: nothing to imagine after picking up the only known object")
    layout = Layout(width, height, tuple(objects), _caption([o.label for o in objects]))
    return Plan(command, width, height, target, anchors, goal_box, layout, verdict, ambiguities)
