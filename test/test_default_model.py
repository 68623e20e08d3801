"""The embedded default model: `EchoGen.load()` reads it offline with no path; it is 16-bit safetensors
within 40 MB, carries its training provenance, and still grounds a fixed set of held-out scenes
(compositions never seen in training) at least as well as when it was shipped (a regression floor set
below the shipped model's measured figure; a random model scores about 0 here)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors import safe_open

from echogen_ros.domain import words
from echogen_ros.evaluation import inventory as inventory_scores
from echogen_ros.evaluation import trust
from echogen_ros.evaluation.detector import detect
from echogen_ros.evaluation.layout_ap import layout_ap
from echogen_ros.model import category_check, finding, ordinal_check
from echogen_ros.model.echogen import DEFAULT_MODEL_DIR, CycleResult, EchoGen
from echogen_ros.model.layout import Layout, LayoutObject, box_iou
from echogen_ros.model.presets import PRESETS
from echogen_ros.world.dataset import world_sample
from echogen_ros.world.render import empty_table
from echogen_ros.world.scene import SceneConfig

# held-out seed 7, scenes 0..23, every expression (214): the shipped model measured Acc@0.5 0.944, Acc@0.75
# 0.925, centre within 40 px 0.949, within 80 px 0.963 (the model before its encoder learnt pale colours:
# 0.818, 0.794, 0.832, 0.846; a random tabletop model: 0.0, 0.0, 0.005, 0.056). The floors leave room for
# numerical noise across CPUs and torch versions, not for a worse model.
FLOOR_ACC50 = 0.86
FLOOR_ACC75 = 0.84
FLOOR_CENTRE_WITHIN_40PX = 0.86
FLOOR_CENTRE_WITHIN_80PX = 0.88
# the layout-reading decoder (`imagine(decoder_map=True)`, an option: it draws objects from the layout itself):
# the cycle check on the layouts of held-out scenes 0..11 (72 objects, seed = scene index): measured mean IoU
# 0.919 with the decoder reading the layout after three runs (after the first two: 0.913; before: 0.796;
# at 64 px 0.785, and 0.766 when a label named twice was grounded once per object, so one of the two
# always failed; the model before: 0.736; before the 16 × 16 tokenizer: 0.565; before the layout map: 0.03
# on the full evaluation). Sampling makes it noisier across machines than grounding (one standard error
# ≈ 0.03), hence the wider margin.
FLOOR_CYCLE_IOU = 0.82
# the classical detector on those imagined scenes (72 objects): layout AP50 measured 0.959 (after the first
# two decoder-map runs: 0.833; the model before its decoder read the layout: 0.452). One scene's misread
# objects move it by about 0.05, and sampling differs across machines. Since the detector grades shape
# (2026-12-06), on the model shipped that day: 0.864 (0.950 by the old detector; cycle 0.897).
FLOOR_IMAGINED_AP50 = 0.76
# the generator alone (issue 35): its tokens drawn by the decoder that reads codes only, the same 12 scenes.
# Measured on the embedded model with its decoder separated (`echogen-train separate-decoder`): cycle mean IoU
# 0.772, detector AP50 0.511; the controls: an empty table's codes 0.013 / 0.000, another scene's codes
# 0.015 / 0.002, the real frames' own codes (the tokenizer's ceiling) 0.841 / 0.557. The empty table fails both.
# Since the detector grades shape (outline and interior tones, 2026-12-06; painted boxes 0.63 -> 0.04 AP50),
# on the model shipped that day: cycle 0.741 (the detector plays no part), AP50 0.499 (0.429 by the old
# detector); an empty table's codes 0.008 / 0.000, another scene's 0.013 / 0.000, the ceiling 0.822 / 0.592.
# The floors keep their margins; the empty table fails both.
FLOOR_GENERATOR_CYCLE_IOU = 0.70
FLOOR_GENERATOR_AP50 = 0.40
# held-out seed 7, scenes 0..39 with a label named twice (scenes 7, 9, 11, 15, 21, 22: 16 such objects, as
# rendered): `ground_layout` finds 15 of them (IoU >= 0.5); grounding each label once per object finds at
# most one of each pair (8), as both ask the same question.
FLOOR_ALIKE_FOUND = 0.8
# issue 34, held-out seed 7, scenes 0..23: every expression with a referent (214) and every no-target one
# (96), answered by `find` at the node's threshold (0.5) with the shipped calibration and the answer checks
# (relation, ordinal, closer look and category, on raw scores; the calibration, which reads the box's size,
# refitted with the checks of the day on 2026-12-06, again once the ordinal check left out objects another category
# claims, again with the category check, and again with the second look, session 13). Measured: no-target
# expressions not found 0.948 (relations no object satisfies 0.958 of 24, ordinals beyond the count 0.958 of 24,
# categories the scene lacks 0.875 of 24; with one look and its calibration 0.969: 1.000, 0.958, 0.917; without the
# checks 0.781, relations 0.583, ordinals 0.667; the ordinal check without its rival rule (ordinal_check.not_outscored)
# 0.875; without the category check categories 0.875, and without the closer look too 0.792), expressions with a
# referent found and right 0.944, answers acted on but wrong 0.023 of all (one look 0.949 / 0.016; without the checks
# 0.094; the model before it learnt the empty box, raw scores: 0.563 / 0.888 / 0.158). A model that never answers
# passes the first and fails the second; one that always answers, the reverse. (These scenes are among the 100 the
# calibration is fitted on: seed 7 is this project's validation split for compositions.)
FLOOR_NO_TARGET = 0.92
FLOOR_RELATION_NO_TARGET = 0.9
FLOOR_ORDINAL_NO_TARGET = 0.9
FLOOR_CATEGORY_NO_TARGET = 0.83  # 20 of 24: one answer below the measured 21
FLOOR_FOUND_AND_RIGHT = 0.88
CEILING_FOUND_BUT_WRONG = 0.05
# objects drawn at 0.5-0.7 x the catalogue's sizes (held-out seed 7, scenes 0..11, `SceneConfig.scale_range`), 126
# expressions: the greedy box (`ground_many`) Acc@0.5 0.778 with the model shipped on 2026-12-06 (it learnt sizes
# × 0.5–1.6; before it 0.413, before the no-target runs 0.444); the box `find` answers with (`finding.look`: the best
# beam, then the second look at a box below 0.08 of the side) 0.810, against 0.786 for the best beam alone. Issue
# 34's target, 0.95, is not met: floors against getting worse, and the second look must put some right.
FLOOR_SMALL_OBJECTS_ACC50 = 0.72
FLOOR_SMALL_OBJECTS_LOOKED_ACC50 = 0.75
# issue 35's scene inventory, listed by label (every label of the vocabulary grounded, one label per object), on
# held-out seed 7, scenes 0..11 (72 objects): measured COCO AP50 0.965 ("colour category" the class), precision
# 0.944 / recall 0.931 at 0.5, ECE 0.030; the control of scene i + 1's listing scores AP50 0.000 (target 0.90).
FLOOR_INVENTORY_AP50 = 0.85
FLOOR_INVENTORY_RECALL = 0.80
CEILING_ANOTHER_SCENE_AP50 = 0.10


pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "echogen.json").is_file(),
    reason="this checkout has no embedded model (echogen_ros/model/default is missing)",
)


@pytest.fixture(scope="module")
def default() -> EchoGen:
    return EchoGen.load()


def test_the_default_model_loads_offline_small_and_16_bit(default: EchoGen) -> None:
    files = list(DEFAULT_MODEL_DIR.iterdir())
    assert sum(f.stat().st_size for f in files) <= 40 * 2**20
    with safe_open(str(DEFAULT_MODEL_DIR / "model.safetensors"), "pt") as weights:
        dtypes = {weights.get_slice(k).get_dtype() for k in weights.keys()}  # noqa: SIM118
    assert dtypes == {"F16"}
    manifest = json.loads((DEFAULT_MODEL_DIR / "echogen.json").read_text())
    assert manifest["preset"] in PRESETS
    training = dict(manifest["training"])
    continuations = training.pop("continuations", [])  # runs that continued the pipeline's model, in order
    separation = training.pop("decoder_separation", None)  # Janus' decoder swapped for one that reads codes only
    if separation is not None:
        config = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
        assert config["decoder_map"]["decoder"] is True  # the decoder trained with the map moved into the map
        assert len(separation["donor_files"]["model.safetensors"]) == 64  # the codes-only decoder's source, hashed
    assert set(training) == {"vision", "vq", "pmtp", "djo", "cycle_rl"}
    runs = [c for c in continuations if not c["stage"].endswith("_transplant")]  # a swapped part is no run
    assert manifest["stage"] == (runs[-1]["stage"] if runs else "cycle_rl")
    assert all(record["steps"] > 0 and record["wall_s"] > 0 for record in [*training.values(), *runs])
    assert default.dtype.is_floating_point and default.scheme.bins == 128


def test_the_default_model_grounds_fixed_heldout_scenes(default: EchoGen) -> None:
    ious, centre_errors = [], []
    for index in range(24):
        sample = world_sample(7, index, "heldout")
        if not sample.expressions:
            continue
        boxes = sample.boxes()
        found = default.ground_many(sample.image(), [e.text for e in sample.expressions])
        for expression, detection in zip(sample.expressions, found):
            truth = boxes[expression.target]
            ious.append(box_iou(truth, detection.box))
            centre_errors.append(
                np.hypot(
                    (truth[0] + truth[2] - detection.box[0] - detection.box[2]) / 2,
                    (truth[1] + truth[3] - detection.box[1] - detection.box[3]) / 2,
                )
            )
    assert len(ious) >= 100
    assert np.mean(np.array(ious) >= 0.5) >= FLOOR_ACC50
    assert np.mean(np.array(ious) >= 0.75) >= FLOOR_ACC75
    assert np.mean(np.array(centre_errors) <= 40) >= FLOOR_CENTRE_WITHIN_40PX
    assert np.mean(np.array(centre_errors) <= 80) >= FLOOR_CENTRE_WITHIN_80PX


Imagined = list[tuple[list[str], Layout, CycleResult]]


def imagine_scenes(default: EchoGen, decoder_map: bool = False, codes_of=None) -> Imagined:
    """The cycle check on the layouts of held-out scenes 0..11 (seed = scene index): per scene the objects'
    categories, the layout and the result (the picture, the IoUs of the objects grounded back). The pictures
    are the generator's tokens, or with `codes_of(index)` (a control) that picture's codes, drawn by Janus'
    decoder (`decoder_map`: by the layout-reading decoder)."""
    scenes = []
    for index in range(12):
        sample = world_sample(7, index, "heldout")
        objects = tuple(
            LayoutObject(f"{o.colour} {o.category}", tuple(float(v) for v in box))
            for o, box in zip(sample.scene.objects, sample.boxes())
        )
        layout = Layout(640, 480, objects, sample.caption)
        tokens = (
            default.imagine_tokens(layout, seed=index) if codes_of is None else default.image_codes(codes_of(index))
        )
        result = default.check_cycle(default.draw(tokens, layout, decoder_map), layout)
        scenes.append(([o.category for o in sample.scene.objects], layout, result))
    return scenes


def imagined_ap50(imagined) -> float:
    """Layout AP50 (`echogen eval`'s layout-to-image measure) of the independent detector on those scenes."""
    layouts = [[(c, o.box) for c, o in zip(categories, layout.objects)] for categories, layout, _ in imagined]
    found = [[(f.category, f.box, f.score) for f in detect(result.image)] for _, _, result in imagined]
    return layout_ap(layouts, found)["ap50"]


@pytest.fixture(scope="module")
def imagined_with_map(default: EchoGen) -> Imagined:
    return imagine_scenes(default, decoder_map=True)


def test_the_default_model_with_its_decoder_map_imagines_layouts_it_can_ground_back(imagined_with_map) -> None:
    ious = [iou for _, _, result in imagined_with_map for iou in result.ious]
    assert len(ious) >= 60
    assert np.mean(ious) >= FLOOR_CYCLE_IOU


def test_the_default_model_with_its_decoder_map_imagines_objects_the_detector_reads(imagined_with_map) -> None:
    assert imagined_ap50(imagined_with_map) >= FLOOR_IMAGINED_AP50


def test_the_generator_alone_draws_scenes_it_can_ground_back_and_an_empty_table_would_not(default: EchoGen) -> None:
    condition = getattr(default.model.model.vqmodel, "decoder_map", None)
    # a decoder trained with the map draws nothing from codes alone: the shipped one is separated (the recipe's
    # `separate` step, docs/benchmarks.md 2026-12-06)
    assert condition is None or condition.owns_decoder
    for scenes, passes in ((imagine_scenes(default), True), (imagine_scenes(default, codes_of=empty_table), False)):
        ious = [iou for _, _, result in scenes for iou in result.ious]
        assert bool(np.mean(ious) >= FLOOR_GENERATOR_CYCLE_IOU) is passes
        assert (imagined_ap50(scenes) >= FLOOR_GENERATOR_AP50) is passes


def test_the_default_model_finds_both_of_two_alike_objects(default: EchoGen) -> None:
    found = []
    for index in range(40):
        sample = world_sample(7, index, "heldout")
        labels = [f"{o.colour} {o.category}" for o in sample.scene.objects]
        if all(labels.count(label) == 1 for label in labels):
            continue
        layout = Layout(640, 480, tuple(LayoutObject(t, tuple(map(float, b))) for t, b in zip(labels, sample.boxes())))
        detections = default.ground_layout(sample.image(), layout)
        found += [box_iou(o.box, d.box) >= 0.5 for o, d in zip(layout.objects, detections) if labels.count(o.label) > 1]
    assert len(found) >= 12
    assert np.mean(found) >= FLOOR_ALIKE_FOUND


def test_the_default_model_says_when_nothing_there_is_what_it_is_asked(default: EchoGen) -> None:
    assert default.calibration is not None and default.domain is not None  # shipped calibrated and checked
    report = trust.report(trust.collect(default, "heldout", 24, seed=7), default.calibration)
    assert report["no_target"] >= 60 and report["present"] >= 200
    assert report["no_target_accuracy"] >= FLOOR_NO_TARGET
    assert report["by_kind"]["relation"]["no_target"] >= 20
    assert report["by_kind"]["relation"]["not_found"] >= FLOOR_RELATION_NO_TARGET  # the relation check's
    assert report["by_kind"]["ordinal"]["no_target"] >= 20
    assert report["by_kind"]["ordinal"]["not_found"] >= FLOOR_ORDINAL_NO_TARGET  # the ordinal check's
    assert report["by_kind"]["category"]["no_target"] >= 20
    assert report["by_kind"]["category"]["not_found"] >= FLOOR_CATEGORY_NO_TARGET  # the closer look's and category's
    assert report["found_and_right"] >= FLOOR_FOUND_AND_RIGHT
    assert report["found_but_wrong"] <= CEILING_FOUND_BUT_WRONG


def test_an_ordinal_whose_count_another_category_claims_is_not_found(default: EchoGen, monkeypatch) -> None:
    # held-out seed 7, scene 11: one plate (yellow); "the orange plate" lands on an orange box and "the purple
    # plate" on a purple box, which "the orange box" and "the purple box" claim (ordinal_check.not_outscored)
    image = world_sample(7, 11, "heldout").image()
    found = default.find(image, "the second plate from the left")
    assert not found.found and found.confidence == 0.0
    assert found.reason.endswith("(ordinal check)"), found.reason  # the check that decided, whatever else holds
    monkeypatch.setattr(ordinal_check, "RIVAL_RATIO", math.inf)  # the boxes counted whatever claims them
    assert default.find(image, "the second plate from the left").found


def test_a_category_the_scene_lacks_is_not_found_where_another_category_claims_the_box(
    default: EchoGen, monkeypatch
) -> None:
    # held-out seed 7, scene 141: no plate; "the plate" lands on a white bowl, which "the bowl" claims at 1.6 x its
    # raw score (0.64 against 0.39); the closer look passes it
    image = world_sample(7, 141, "heldout").image()
    found = default.find(image, "the plate")
    assert not found.found and found.confidence == 0.0
    assert found.reason.startswith("'the plate' found is more 'the bowl'"), found.reason
    assert found.reason.endswith("; category check)"), found.reason
    monkeypatch.setattr(category_check, "RIVAL_RATIO", math.inf)  # no rival claims enough
    assert default.find(image, "the plate").found


def test_the_default_model_grounds_small_objects_no_worse(default: EchoGen, monkeypatch) -> None:
    config = SceneConfig(scale_range=(0.5, 0.7))
    right, looked, one_look = [], [], []
    for index in range(12):
        sample = world_sample(7, index, "heldout", config)
        image, boxes = sample.image(), sample.boxes()
        found = default.ground_many(image, [e.text for e in sample.expressions])
        right += [box_iou(boxes[e.target], d.box) >= 0.5 for e, d in zip(sample.expressions, found)]
        frame = finding.encode(default, image)
        for e in sample.expressions:  # as `find` asks: two boxes, the best one answers
            text = words.read(e.text).text
            with torch.inference_mode():
                looked.append(box_iou(boxes[e.target], finding.look(default, frame, text, 2)[0][0].box) >= 0.5)
            with monkeypatch.context() as off, torch.inference_mode():
                off.setattr(default, "second_look_below", None)
                one_look.append(box_iou(boxes[e.target], finding.look(default, frame, text, 2)[0][0].box) >= 0.5)
    assert len(right) >= 80
    assert np.mean(right) >= FLOOR_SMALL_OBJECTS_ACC50
    assert np.mean(looked) >= FLOOR_SMALL_OBJECTS_LOOKED_ACC50
    assert sum(looked) > sum(one_look)  # measured 102 against 99


def test_the_default_model_lists_fixed_scenes_and_another_scenes_listing_would_not_pass(default: EchoGen) -> None:
    """Issue 35's scene inventory (by label) on held-out scenes 0..11 of seed 7: COCO AP50 with "colour
    category" as the class and recall at 0.5, against the control of scene i + 1's listing."""
    truths, listings = [], []
    for index in range(12):
        sample = world_sample(7, index, "heldout")
        truths.append([(f"{o.colour} {o.category}", tuple(map(float, b))) for o, b in zip(sample.scene.objects,
                                                                                       sample.boxes())])  # fmt: skip
        listings.append([(d.label, d.box, d.score) for d in default.parse_scene(sample.image()).objects])
    listed = inventory_scores.scores(truths, listings, 0.5)
    another = inventory_scores.scores(truths, listings[1:] + listings[:1], 0.5)
    assert listed["objects"] >= 40
    assert listed["ap50"] >= FLOOR_INVENTORY_AP50 and listed["recall"] >= FLOOR_INVENTORY_RECALL
    assert another["ap50"] <= CEILING_ANOTHER_SCENE_AP50
