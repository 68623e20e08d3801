"""experiments.calibration_sizes cuts second_look's fit answers into val's and seed 7's held-out scenes by the
number of expressions each held-out scene gives, and refuses rows too short to hold them."""

from __future__ import annotations

import pytest
from echogen_training.tools.calibrate import COMPOSITIONS_SEED
from experiments import calibration_sizes

from echogen_ros.world.dataset import world_sample


def test_the_held_out_scenes_are_the_fit_answers_tail_cut_by_scene() -> None:
    counts = [
        len(s.expressions) + len(s.absent) for s in (world_sample(COMPOSITIONS_SEED, i, "heldout") for i in range(3))
    ]
    val = [("val", i) for i in range(7)]
    held = [("held", i) for i in range(sum(counts))]
    scenes = calibration_sizes.by_scene(val + held, 3)
    assert [len(s) for s in scenes] == counts and [a for s in scenes for a in s] == held
    with pytest.raises(ValueError, match="fewer than 3 held-out scenes"):
        calibration_sizes.by_scene(held[:-1], 3)
