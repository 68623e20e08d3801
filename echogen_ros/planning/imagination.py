"""One goal-imagination pipeline: (an instruction, planned in the frame) or a goal layout → the imagined
scene → its objects grounded back (the cycle check) → whether the live frame already satisfies the command.
The node's Imagine action (and through it bag mode and the demo) and `echogen plan` all run this one.
`progress(stage, fraction)` hears each stage; `cancelled()` is asked between stages; `guard` is held around
each model call (the node's model lock), so other work can use the model in between.

The cycle check grades the generator's own picture: its tokens drawn by the decoder that reads codes only.
It passes when the mean IoU of the objects grounded back reaches `cycle_threshold` (CYCLE_THRESHOLD by
default). With `decoder_map` the picture shown is the layout-reading decoder's drawing of the same tokens;
the check never sees it (that decoder draws a layout's objects whatever the tokens say)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from echogen_ros.model.layout import Layout
from echogen_ros.planning.commands import Command
from echogen_ros.planning.grounders import Grounder, ModelGrounder
from echogen_ros.planning.planner import Plan, plan
from echogen_ros.planning.verify import verify_command

if TYPE_CHECKING:  # the model module imports torch; this one stays light
    from echogen_ros.model.echogen import CycleResult

STAGES = ("planning", "generating", "grounding", "verifying", "done")
_PROGRESS = dict(zip(STAGES, (0.05, 0.2, 0.7, 0.9, 1.0)))
# the mean cycle IoU under which the check says the picture is not the goal: the best F1 at failing the scenes
# the independent detector finds drawn wrong (under half their objects found), chosen on 40 test-split scenes
# (precision 0.32, recall 1.0; 0.75: 0.45 / 0.50) and reported on held-out ones (docs/benchmarks.md, 2026-12-06)
CYCLE_THRESHOLD = 0.85


class Cancelled(Exception):
    """The imagination was cancelled between stages."""


@dataclass
class ImaginedGoal:
    goal_layout: Layout
    cycle: CycleResult  # the generator's picture, the objects grounded back, their IoUs with the goal
    plan: Plan | None  # for an instruction: target, anchors, goal box
    satisfied_now: bool  # does the live frame already satisfy the command? (False without one)
    image: np.ndarray  # the picture to show: the cycle-checked one, or the decoder map's drawing of its tokens
    cycle_passed: bool  # cycle.mean_iou reached the threshold: the picture shows the goal


def imagine_goal(
    model,
    goal: Command | Layout,
    frame: np.ndarray | None,
    seed: int | None = None,
    guidance: float | None = None,
    grounder: Grounder | None = None,
    progress: Callable[[str, float], None] = lambda stage, fraction: None,
    cancelled: Callable[[], bool] = lambda: False,
    guard: AbstractContextManager = nullcontext(),  # noqa: B008 - a stateless, reusable context
    cycle_threshold: float = CYCLE_THRESHOLD,
    decoder_map: bool = False,
) -> ImaginedGoal:
    """Imagine `goal` (a command needs `frame` to plan in); raises Cancelled between stages when asked, and
    PlanningError when a referent is not found (`grounder`, default the model at its default threshold)."""
    grounder = grounder or ModelGrounder(model)

    def stage(name: str) -> None:
        if cancelled():
            raise Cancelled()
        progress(name, _PROGRESS[name])

    stage("planning")
    planned = None
    if isinstance(goal, Command):
        if frame is None:
            raise ValueError("an instruction needs a camera frame to plan in; none received yet")
        with guard:
            planned = plan(frame, goal, grounder)
    layout = planned.goal_layout if planned is not None else goal
    stage("generating")
    with guard:
        tokens = model.imagine_tokens(layout, seed=seed, guidance=guidance)
        image = model.draw(tokens, layout)
        shown = model.draw(tokens, layout, decoder_map=True) if decoder_map else image
    stage("grounding")
    with guard:
        cycle = model.check_cycle(image, layout)
    stage("verifying")
    satisfied = False
    if isinstance(goal, Command):
        with guard:
            satisfied = verify_command(grounder, frame, goal).satisfied
    progress("done", _PROGRESS["done"])
    return ImaginedGoal(layout, cycle, planned, satisfied, shown, cycle.mean_iou >= cycle_threshold)
