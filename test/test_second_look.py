"""The second look (`finding.look`; the shipped model's calibration was fitted with it, and a model looks again where
its calibration says so): a small best box is read again in a crop around it. On test scene 1 (seed 0) with objects
at × 0.5–0.7, the whole frame puts "the block" on another object and the second look on the block. A look that is
off, or a box at or above SECOND_LOOK_BELOW, is the whole frame's answer."""

from __future__ import annotations

import pytest
import torch

from echogen_ros.model import finding
from echogen_ros.model.layout import box_iou
from echogen_ros.world.dataset import world_sample
from echogen_ros.world.scene import SceneConfig

PHRASE = "the block"


@pytest.fixture(scope="module")
def model():
    from echogen_ros.model.echogen import EchoGen

    return EchoGen.load()


@pytest.fixture(autouse=True)
def _no_gradients():
    with torch.inference_mode():  # as `find` looks
        yield


@pytest.fixture(scope="module")
def shot(model):
    """(the encoded frame, the block's true box, the whole frame's answer and no-target probability)."""
    sample = world_sample(0, 1, "test", SceneConfig(scale_range=(0.5, 0.7)))
    target = next(e.target for e in sample.expressions if e.text == PHRASE)
    frame = finding.encode(model, sample.image())
    with torch.inference_mode():
        return frame, sample.boxes()[target], finding.candidates(model, frame.features, frame.letterbox, PHRASE, 2)


def test_off_it_is_the_whole_frames_answer(model, shot, monkeypatch) -> None:
    frame, truth, (found, absent) = shot
    monkeypatch.setattr(model, "second_look_below", None)  # as a model calibrated without it
    assert box_iou(found[0].box, truth) < 0.5, "the whole frame finds the block: this scene no longer tests the look"
    assert finding.look(model, frame, PHRASE, 2) == (found, absent)


def test_the_second_look_puts_a_small_answer_on_its_object(model, shot, monkeypatch) -> None:
    frame, truth, (found, absent) = shot
    assert model.second_look_below == finding.SECOND_LOOK_BELOW  # shipped on, at the bound calibrate fits with
    looked, looked_absent = finding.look(model, frame, PHRASE, 2)
    assert box_iou(looked[0].box, truth) >= 0.5
    assert looked_absent >= absent  # the larger of the two looks' no-target probabilities
    assert all(box_iou(d.box, looked[0].box) < 0.5 for d in looked[1:])  # the rest: distinct from the new best
    share = finding.side_share(found[0].box, frame.image.shape[:2])
    assert finding.look(model, frame, PHRASE, 2, again=False) == (found, absent)  # as the scene listing looks
    monkeypatch.setattr(model, "second_look_below", share)  # a box at the bound is not looked at again
    assert finding.look(model, frame, PHRASE, 2) == (found, absent)


def test_a_model_looks_again_as_its_calibration_was_fitted(model, tiny_model) -> None:
    # a calibration maps the signals of the answers it was fitted on: the model reads its bound from there
    assert model.second_look_below == model.calibration.fitted_on["second_look_below"] == 0.08
    assert tiny_model.calibration is None and tiny_model.second_look_below is None  # uncalibrated: one look
