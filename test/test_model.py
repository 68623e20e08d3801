"""EchoGen with a tiny random model: grounding (pixels, top-k, refined coordinates, batching, pairs),
imagining (determinism, scaled-down large layouts), the cycle check and bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.generation import bin_peaks
from echogen_ros.model.initialisation import sincos_2d
from echogen_ros.model.layout import Layout, LayoutObject, box_iou
from echogen_ros.model.presets import PRESETS
from echogen_ros.world.dataset import world_sample

ROOT = Path(__file__).resolve().parents[1]
IMAGE = world_sample(0, 1, "val").image(320, 240)
LAYOUT = Layout(
    320, 240, (LayoutObject("red cup", (10, 20, 90, 100)), LayoutObject("plate", (150, 60, 300, 200))), "a table"
)


def test_ground_returns_boxes_in_input_pixels(tiny_model: EchoGen) -> None:
    (det,) = tiny_model.ground(IMAGE, "the red cup")
    x1, y1, x2, y2 = det.box
    assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 240
    assert 0.0 < det.score <= 1.0 and det.label == "the red cup"


def test_top_k_gives_distinct_boxes_best_first(tiny_model: EchoGen) -> None:
    square = world_sample(0, 1, "val").image(240, 240)  # no letterbox padding: distinct beams, distinct boxes
    detections = tiny_model.ground(square, "the ball", top_k=4)
    assert 2 <= len(detections) <= 4
    scores = [d.score for d in detections]
    assert scores == sorted(scores, reverse=True)
    for i, a in enumerate(detections):  # different objects, not one box read twice
        assert all(box_iou(a.box, b.box) < 0.5 for b in detections[i + 1 :])
    # beam 1 = greedy (the same bins; refined coordinates equal up to float noise of the two decodes)
    np.testing.assert_allclose(detections[0].box, tiny_model.ground(square, "the ball")[0].box, atol=1e-3)


def test_refined_coordinates_weigh_the_bins_near_the_chosen_one() -> None:
    """A coordinate is the probability-weighted mean of the bin centres within REFINE_BINS of the chosen
    bin: a sure bin gives its centre, a neighbour's mass pulls towards it, a far-off mode is ignored."""
    from echogen_ros.model.generation import REFINE_BINS, refine

    bins = 16
    probs = torch.zeros(3, bins)
    probs[0, 3] = 1.0
    probs[1, 3], probs[1, 4] = 0.6, 0.4
    far = 2 + REFINE_BINS + 1
    probs[2, 2], probs[2, 3], probs[2, far] = 0.5, 0.2, 0.3
    got = refine(probs, probs.argmax(-1))
    expected = [3.5 / bins, (0.6 * 3.5 + 0.4 * 4.5) / bins, (0.5 * 2.5 + 0.2 * 3.5) / 0.7 / bins]
    torch.testing.assert_close(got, torch.tensor(expected))
    # every probability underflowed (the mass on non-bin tokens): the chosen bin's centre, never NaN or 0
    underflow = refine(torch.zeros(2, bins), torch.tensor([5, 9]))
    torch.testing.assert_close(underflow, torch.tensor([5.5 / bins, 9.5 / bins]))


def test_grounded_boxes_are_the_refined_coordinates_of_the_greedy_bins(tiny_model: EchoGen) -> None:
    from echogen_ros.model.generation import REFINE_BINS

    expressions = ["the red cup", "the bowl"]
    tokens, probs, coords, absent = tiny_model.decode_grounding(*tiny_model.grounding_inputs(IMAGE, expressions)[:3])
    assert absent.shape == (2,) and bool(((absent >= 0) & (absent <= 1)).all())
    bins = tiny_model.scheme.bins
    centres = (tokens - tiny_model.scheme.bin_offset + 0.5) / bins
    assert bool(((coords - centres).abs() <= REFINE_BINS / bins).all())
    assert bool(((probs > 0) & (probs <= 1)).all())
    letterbox = tiny_model.pixels_array(IMAGE)[1]
    for row, det in enumerate(tiny_model.ground_many(IMAGE, expressions)):
        expected = tiny_model.detection(letterbox, coords[row].tolist(), det.score, det.label)
        np.testing.assert_allclose(det.box, expected.box, atol=1e-3)


def test_batched_grounding_equals_one_by_one(tiny_model: EchoGen) -> None:
    expressions = ["the red cup", "the ball left of the plate", "the second block from the left", "the bowl"]
    batched = tiny_model.ground_many(IMAGE, expressions)
    for expression, det in zip(expressions, batched):
        (single,) = tiny_model.ground(IMAGE, expression)
        np.testing.assert_allclose(det.box, single.box, atol=1e-3)  # left padding: float noise only
        assert det.score == pytest.approx(single.score, rel=1e-4)


def test_imagine_is_deterministic_for_a_seed(tiny_model: EchoGen) -> None:
    a = tiny_model.imagine(LAYOUT, seed=3)
    assert a.shape == (240, 320, 3) and a.dtype == np.uint8
    assert np.array_equal(a, tiny_model.imagine(LAYOUT, seed=3))
    assert not np.array_equal(a, tiny_model.imagine(LAYOUT, seed=4))


def test_a_layout_over_the_imagined_side_is_imagined_scaled_down_and_checked_in_its_own_pixels(
    tiny_model: EchoGen, applied_limits
) -> None:
    """The size a layout declares does not decide the memory it costs: a 4096 x 3072 layout (90 bytes of
    JSON) is imagined at 1280 x 960, and the cycle check maps what it grounds back to the layout's pixels."""
    big = LAYOUT.resized(4096, 3072)
    image = tiny_model.imagine(big, seed=3)
    assert image.shape == (960, 1280, 3)
    cycle = tiny_model.check_cycle(image, big)
    same = tiny_model.check_cycle(image, big.resized(1280, 960))
    assert (cycle.grounded.width, cycle.grounded.height) == (4096, 3072)
    assert cycle.ious == pytest.approx(same.ious, abs=1e-4)
    for mine, scaled in zip(cycle.grounded.objects, same.grounded.objects):
        assert mine.box == pytest.approx([v * 3.2 for v in scaled.box], abs=1e-3)
    applied_limits(max_imagined_side=160)
    assert tiny_model.imagine(LAYOUT, seed=3).shape == (120, 160, 3)


def test_beam_coordinates_are_peaks_of_their_bin_distribution() -> None:
    """A runner-up coordinate is another mode, not the neighbour of a sure bin."""
    probs = torch.zeros(3, 32)
    probs[0, 10], probs[0, 11], probs[0, 9] = 0.6, 0.3, 0.1  # one mode, with its neighbours
    probs[1, 5], probs[1, 6], probs[1, 20], probs[1, 21] = 0.4, 0.2, 0.3, 0.1  # two modes
    probs[2, 5], probs[2, 8] = 0.5, 0.5  # two sure bins 3 apart: one mode at this window
    peaks = bin_peaks(probs, window=4)
    assert peaks[0, 10] and not peaks[0, 9] and not peaks[0, 11]
    assert peaks[1, 5] and peaks[1, 20] and not peaks[1, 6] and not peaks[1, 21]
    assert peaks[2, 5] and peaks[2, 8]  # equal probabilities: both readings kept
    assert peaks[0].sum() == 1 and peaks[1].sum() == 2  # bins with no probability are no reading
    nowhere = bin_peaks(torch.tensor([[0.0] * 8, [float("nan")] * 8]), window=2)
    assert nowhere.sum(-1).tolist() == [1, 1]  # still one candidate: decoding never runs out


def test_a_label_named_twice_is_grounded_as_a_pair(tiny_model: EchoGen) -> None:
    layout = Layout(
        320, 240, (LayoutObject("cup", (10, 20, 90, 100)), LayoutObject("plate", (150, 60, 300, 200)),
                   LayoutObject("cup", (200, 20, 280, 100)))
    )  # fmt: skip
    found = tiny_model.ground_layout(IMAGE, layout)
    (plate,) = tiny_model.ground_many(IMAGE, ["plate"])
    assert found[1] == plate  # a label named once: as ground_many grounds it
    pair = tiny_model.ground(IMAGE, "cup", top_k=2)
    assert len(pair) == 2 and {found[0].box, found[2].box} == {d.box for d in pair}  # one each
    total = box_iou(layout.objects[0].box, found[0].box) + box_iou(layout.objects[2].box, found[2].box)
    swapped = box_iou(layout.objects[0].box, found[2].box) + box_iou(layout.objects[2].box, found[0].box)
    assert total >= swapped  # the matching of larger total IoU


def test_cycle_reports_per_object_iou(tiny_model: EchoGen) -> None:
    result = tiny_model.cycle(LAYOUT, seed=1)
    assert result.image.shape == (240, 320, 3)
    assert len(result.ious) == 2 and all(0.0 <= v <= 1.0 for v in result.ious)
    assert result.mean_iou == pytest.approx(np.mean(result.ious))
    assert [o.label for o in result.grounded.objects] == ["red cup", "plate"]


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (Layout(320, 240, (LayoutObject("cup", (10, 10, 400, 50)),)), "outside"),
        (Layout(320, 240, (LayoutObject("cup", (50, 10, 50, 50)),)), "degenerate"),
        (Layout(320, 240, (LayoutObject("cup", (10, float("nan"), 20, 50)),)), "finite"),
        (Layout(320, 240, ()), "no objects"),
        (Layout(320, 240, (LayoutObject("cup", (1, 1, 5, 5)),) * 13), "at most 12"),
    ],
)
def test_imagine_rejects_bad_layouts(tiny_model: EchoGen, layout: Layout, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_model.imagine(layout)


@pytest.mark.parametrize(
    ("image", "message"),
    [(np.zeros((10, 10), np.uint8), "RGB"), (np.zeros((10, 10, 3), np.float32), "uint8"), ([[1]], "numpy")],
)
def test_ground_rejects_bad_images(tiny_model: EchoGen, image, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_model.ground(image, "the cup")


def test_ground_rejects_empty_expression(tiny_model: EchoGen) -> None:
    with pytest.raises(ValueError, match="empty"):
        tiny_model.ground(IMAGE, "   ")


def test_created_models_start_with_position_structure() -> None:
    echogen = EchoGen.create("tabletop", seed=0)
    table = echogen.model.model.vision_model.embeddings.position_embedding.weight.detach()
    side = PRESETS["tabletop"].vision_size // PRESETS["tabletop"].patch
    assert torch.allclose(table, sincos_2d(side, table.shape[1]))
    # neighbouring patches (and bins) are more alike than distant ones: position is there from step 0
    distance = [float((table[0] - table[k]).norm()) for k in (1, side // 2, side - 1)]
    assert distance[0] < distance[1] < distance[2]
    cosine = torch.nn.functional.cosine_similarity
    scheme = echogen.scheme
    bins = echogen.model.get_input_embeddings().weight.detach()[scheme.bin_offset : scheme.bin_offset + scheme.bins]
    near = cosine(bins[:-1], bins[1:], dim=1).mean()
    far = cosine(bins[: scheme.bins // 2], bins[scheme.bins // 2 :], dim=1).mean()
    assert near > 0.9 and far < near - 0.3
    assert float(bins.std()) == pytest.approx(
        float(echogen.model.get_input_embeddings().weight.detach().std()), rel=0.2
    )
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d(4, 6)


def test_layout_map_covers_each_cell_with_its_objects_labels(tmp_path: Path) -> None:
    """The layout map: per image cell, the covering fraction of each box times its label's mean word
    embedding; nothing for an unconditional prompt; the setting survives save/load (the parity test in
    training/tests/test_loop.py checks it reaches the model in training and generation alike)."""
    from echogen_ros.model import generation

    model = EchoGen.create("tiny", seed=0)
    generation.enable_layout_map(model.model, model.scheme)
    bins, grid = model.scheme.bins, round(model.scheme.image_tokens**0.5)
    centre = 0.5 / bins  # coordinates come back as bin centres
    box_a = (0.0 + centre, 0.0 + centre, 0.5 + centre, 0.25 + centre)  # about the top-left two cells (4×4)
    box_b = (0.5 + centre, 0.5 + centre, 1.0 - centre, 1.0 - centre)  # about the bottom-right quarter
    red, cup, plate, table = (model.tokenizer.token_to_id(w) for w in ("red", "cup", "plate", "table"))
    cond, uncond = model.scheme.l2i_prompt([table], [([red, cup], box_a), ([plate], box_b)])
    maps = generation.layout_map(model.model, torch.tensor([cond, uncond]))
    weights = model.model.get_input_embeddings().weight.detach()
    cover_a = generation.box_cover(torch.tensor(box_a), grid)
    cover_b = generation.box_cover(torch.tensor(box_b), grid)
    expected = cover_a[:, None] * (weights[red] + weights[cup]) / 2 + cover_b[:, None] * weights[plate]
    assert torch.allclose(maps[0], expected, atol=1e-6)
    exact = torch.tensor([[0.0, 0.0, 0.5, 0.25], [0.5, 0.5, 1.0, 1.0], [0.1, 0.0, 0.2, 0.25]])
    exact = generation.box_cover(exact, grid)
    assert exact[0].view(grid, grid)[0, :2].tolist() == [1.0, 1.0] and exact[0].sum() == 2.0
    assert torch.equal(exact[1].view(grid, grid)[2:, 2:], torch.ones(2, 2)) and exact[1].sum() == 4.0
    assert torch.allclose(exact[2], torch.eye(grid * grid)[0] * 0.4)  # 0.1 of the 0.25-wide first cell
    assert torch.count_nonzero(maps[1]) == 0  # the unconditional prompt: no objects, no map
    again = EchoGen.load(model.save(tmp_path / "mapped"))
    assert again.model.config.layout_map == model.model.config.layout_map
    assert np.array_equal(again.imagine(LAYOUT, seed=3), model.imagine(LAYOUT, seed=3))
