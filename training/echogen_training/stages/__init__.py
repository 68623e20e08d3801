"""The training stages, one module each (`base.Stage` is what they share); `stage_type(name)` finds one."""

from __future__ import annotations

from echogen_training.stages.base import Stage
from echogen_training.stages.cycle_rl import CycleRLStage
from echogen_training.stages.djo import DJOStage
from echogen_training.stages.pmtp import PMTPStage
from echogen_training.stages.vision import VisionStage
from echogen_training.stages.vq import VQStage

TYPES: dict[str, type[Stage]] = {s.name: s for s in (VisionStage, VQStage, PMTPStage, DJOStage, CycleRLStage)}


def stage_type(name: str) -> type[Stage]:
    return TYPES[name]
