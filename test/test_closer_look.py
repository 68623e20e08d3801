"""The closer-look check on hand-made boxes: which phrases it reads, the crop it looks at (the box inside it, at
the size the check brings it to, the crop inside the frame) and when the closer look disagrees. On the
embedded model: test_default_model.py (categories and colours the scene lacks are not found) and the frame of
small objects below."""

from __future__ import annotations

import math

import numpy as np
import pytest

from echogen_ros.model import closer_look
from echogen_ros.model.closer_look import failure, looked_at, window
from echogen_ros.model.finding import side_share

FRAME = (480, 640)  # height, width


def test_only_a_phrase_that_names_an_object_is_looked_at_closer() -> None:
    for phrase in ("the cup", "the red cup", "the white banana"):
        assert looked_at(phrase), phrase
    for phrase in ("the cup left of the plate", "the second cup from the left", "the large cup", "the leftmost cup",
                   "the cup next to the red plate", "cup", "the red", "a red cup", "the red green cup"):  # fmt: skip
        assert not looked_at(phrase), phrase


@pytest.mark.parametrize("box", [(300, 220, 330, 250), (0, 0, 20, 20), (620, 470, 640, 480), (50, 300, 110, 330)])
def test_the_crop_holds_the_box_at_the_size_looked_for_inside_the_frame(box) -> None:
    share = side_share(box, FRAME)
    x0, y0, x1, y1 = window(box, share, FRAME)
    assert 0 <= x0 < x1 <= FRAME[1] and 0 <= y0 < y1 <= FRAME[0]
    assert x0 <= box[0] and y0 <= box[1] and box[2] <= x1 and box[3] <= y1  # the whole box is in the crop
    assert (x1 - x0) / (y1 - y0) == pytest.approx(FRAME[1] / FRAME[0], rel=0.02)  # the frame's shape
    zoom = min(closer_look.SHARE / share, closer_look.MOST_ZOOM)
    assert FRAME[1] / (x1 - x0) == pytest.approx(zoom, rel=0.02)


def test_a_tiny_box_is_zoomed_at_most_four_times_and_a_long_one_not_beyond_the_frame() -> None:
    x0, y0, x1, y1 = window((318, 238, 322, 242), side_share((318, 238, 322, 242), FRAME), FRAME)
    assert (x1 - x0, y1 - y0) == (160, 120)
    long = (0, 200, 600, 210)
    x0, y0, x1, y1 = window(long, side_share(long, FRAME), FRAME)
    assert (x0, y0, x1, y1) == (0, 0, 640, 480)
    assert side_share(long, FRAME) == pytest.approx(math.sqrt(6000 / (640 * 480)))


def test_a_closer_look_fails_an_answer_where_nothing_is_there_or_it_looks_elsewhere() -> None:
    box = (100, 100, 130, 130)
    assert failure("the cup", box, (102, 101, 131, 130), closer_look.ABSENT - 0.01) == ""
    assert "finds nothing there" in failure("the cup", box, (102, 101, 131, 130), closer_look.ABSENT + 0.01)
    elsewhere = failure("the cup", box, (200, 100, 230, 130), 0.1)
    assert "elsewhere" in elsewhere and "IoU 0.00" in elsewhere and "closer-look check" in elsewhere


@pytest.fixture(scope="module")
def default_model():
    from echogen_ros.model.echogen import EchoGen

    return EchoGen.load()


@pytest.fixture
def asked(monkeypatch) -> list[str]:
    """The phrases grounded (`finding.candidates`: the real one, each call's phrase noted) while a test runs."""
    from echogen_ros.model import finding

    phrases: list[str] = []
    grounded = finding.candidates

    def noted(model, features, letterbox, text, k):
        phrases.append(text)
        return grounded(model, features, letterbox, text, k)

    monkeypatch.setattr(finding, "candidates", noted)
    return phrases


def test_the_embedded_model_looks_closer_only_at_small_boxes(default_model, asked, monkeypatch) -> None:
    """On a frame of small objects (× 0.5–0.6) the box for "the cup" is small and is looked at closer: the phrase
    is grounded twice (the frame, then the crop), and once more before, where `find`'s second look reads the best
    box again (below 0.08 of the side); a phrase with a relation is grounded once (and its anchor)."""
    from echogen_ros.world.dataset import world_sample
    from echogen_ros.world.scene import SceneConfig

    small = world_sample(0, 0, "test", SceneConfig(scale_range=(0.5, 0.6))).image(640, 480)
    answer = default_model.find(small, "the cup", threshold=0.0, top_k=1)
    share = side_share(answer.detections[0].box, FRAME)
    assert share < default_model.second_look_below and asked == ["the cup"] * 3  # the frame, the second look, the check
    asked.clear()
    monkeypatch.setattr(default_model, "second_look_below", None)  # one look: the closer-look check alone
    answer = default_model.find(small, "the cup", threshold=0.0, top_k=1)
    assert side_share(answer.detections[0].box, FRAME) < closer_look.SMALL and asked == ["the cup", "the cup"]
    asked.clear()
    default_model.find(small, "the cup left of the plate", threshold=0.0)
    assert asked == ["the cup left of the plate", "the plate"]


def test_the_listing_looks_closer_only_at_labels_that_would_stand(default_model, asked, monkeypatch) -> None:
    """The scene listed by label on a frame of small objects: the same labels, boxes and probabilities (those a
    listing checks, from LOOKED_AT) as when every label's box is checked first, for fewer closer looks."""
    from echogen_ros.model import finding, label_listing
    from echogen_ros.model.layout import Detection
    from echogen_ros.world.dataset import world_sample
    from echogen_ros.world.scene import SceneConfig

    assert not label_listing.LOOKS_AGAIN  # the listing takes one look: `find` compared with one look too
    monkeypatch.setattr(default_model, "second_look_below", None)
    small = world_sample(0, 1, "test", SceneConfig(scale_range=(0.5, 0.6))).image(640, 480)
    phrases = [f"the {label}" for label in label_listing.LABELS]
    every = finding.find_all(default_model, small, phrases, 0.0)
    looks_every = len(asked) - len(phrases)
    first = [Detection(f.detections[0].box, f.detections[0].score, label)
             for label, f in zip(label_listing.LABELS, every) if f.detections]  # fmt: skip
    expected = [d for d in label_listing.one_label_per_object(first) if d.score >= label_listing.LOOKED_AT]
    asked.clear()
    listed = [d for d in default_model.parse_scene(small).objects if d.score >= label_listing.LOOKED_AT]
    looks_standing = len(asked) - len(phrases)
    assert sorted(listed, key=lambda d: d.label) == sorted(expected, key=lambda d: d.label) and expected
    assert 0 < looks_standing < looks_every


def test_a_frame_of_a_few_pixels_is_not_looked_at_closer(default_model) -> None:
    """A crop of a 6 × 6 frame would be a pixel or two: the check passes the box rather than fail on the crop."""
    from echogen_ros.model.finding import closer_look_failures

    tiny = np.full((6, 6, 3), 128, dtype=np.uint8)
    assert closer_look_failures(default_model, tiny, None, None, "the cup", [(2.0, 2.0, 2.5, 2.5)]) == [""]
