"""The cycle check can fail (issue 35): fed a generator that draws the wrong picture (an empty table's codes,
another scene's codes) through the embedded model's real VQ decoder and grounder, it says the picture is not
the goal; and the layout-reading decoder (`decoder_map`), which draws a layout's objects whatever the codes
say, is never what it grades."""

from __future__ import annotations

import numpy as np
import pytest

from echogen_ros.model import drawing
from echogen_ros.model.echogen import DEFAULT_MODEL_DIR, EchoGen
from echogen_ros.model.layout import Layout, LayoutObject
from echogen_ros.planning.imagination import CYCLE_THRESHOLD, imagine_goal
from echogen_ros.world.dataset import world_sample
from echogen_ros.world.render import empty_table

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "echogen.json").is_file(),
    reason="this checkout has no embedded model (echogen_ros/model/default is missing)",
)
SCENES = range(4)  # held-out seed 7


class CodesOf:
    """A generator that writes the codes of one fixed picture whatever the layout asks for; the rest (decoder,
    grounder, the check) is the embedded model's."""

    def __init__(self, model: EchoGen, picture: np.ndarray) -> None:
        self.model, self.picture = model, picture

    def imagine_tokens(self, layout: Layout, **_options):
        return drawing.codes(self.model, self.picture)

    def __getattr__(self, name: str):
        return getattr(self.model, name)


@pytest.fixture(scope="module")
def default() -> EchoGen:
    return EchoGen.load()


def scene_layout(index: int) -> Layout:
    sample = world_sample(7, index, "heldout")
    objects = tuple(LayoutObject(o.label, tuple(map(float, b))) for o, b in zip(sample.scene.objects, sample.boxes()))
    return Layout(640, 480, objects, sample.caption)


@pytest.mark.parametrize("picture", ["empty table", "another scene"])
def test_the_cycle_check_fails_a_generator_that_draws_the_wrong_picture(default: EchoGen, picture: str) -> None:
    for index in SCENES:
        drawn = empty_table(index) if picture == "empty table" else world_sample(7, index + 1, "heldout").image()
        result = imagine_goal(CodesOf(default, drawn), scene_layout(index), None, seed=index)
        assert result.cycle.mean_iou < CYCLE_THRESHOLD and not result.cycle_passed, (picture, index)


def test_the_decoder_map_is_shown_when_asked_and_never_graded(default: EchoGen) -> None:
    if not drawing.has_decoder_map(default):
        pytest.skip("the embedded model has no layout-reading decoder")
    layout = scene_layout(0)
    plain = imagine_goal(default, layout, None, seed=0)
    mapped = imagine_goal(default, layout, None, seed=0, decoder_map=True)
    assert np.array_equal(mapped.cycle.image, plain.cycle.image) and mapped.cycle.ious == plain.cycle.ious
    assert np.array_equal(plain.image, plain.cycle.image) and not np.array_equal(mapped.image, plain.image)
    empty = imagine_goal(CodesOf(default, empty_table(0)), layout, None, seed=0, decoder_map=True)
    assert not empty.cycle_passed  # the map draws the layout's objects on an empty table; the check is not fooled
