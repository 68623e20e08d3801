"""Calibrated confidence and what a planner receives (`EchoGen.find`): the calibration on hand-made numbers,
each candidate's signals, and the answers for words it does not know, for thresholds it cannot reach and
for what it can."""

from __future__ import annotations

import json

import numpy as np
import pytest

from echogen_ros.evaluation import trust
from echogen_ros.model.confidence import FEATURES, SIGNALS, Calibration, Signals, features, fit_logistic
from echogen_ros.model.finding import signals
from echogen_ros.model.layout import Detection
from echogen_ros.world.dataset import world_sample


def test_a_logistic_fit_recovers_known_weights() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=4000), np.ones(4000)])
    y = (rng.random(4000) < 1 / (1 + np.exp(-(2.0 * x[:, 0] - 1.0)))).astype(float)
    assert fit_logistic(x, y) == pytest.approx([2.0, -1.0], abs=0.2)


def fitted(rates: dict[Signals, float], answers: int, seed: int) -> Calibration:
    """A calibration fitted to `answers` answers of each signals, drawn right at its rate."""
    rng = np.random.default_rng(seed)
    rows = [(s, rng.random() < rate) for s, rate in rates.items() for _ in range(answers)]
    return Calibration.fit([s for s, _ in rows], [r for _, r in rows])


def test_a_calibration_turns_signals_into_the_rate_they_are_right_at() -> None:
    """Answers drawn so that a sure, unrivalled, present-looking box is right 90 % of the time and a doubtful
    one 10 %: the fit says about 0.9 and 0.1, and a higher absent probability lowers it."""
    sure, doubtful = Signals(0.8, 0.9, 0.01, 0.2), Signals(0.3, 0.05, 0.6, 0.2)
    calibration = fitted({sure: 0.9, doubtful: 0.1}, 500, seed=1)
    assert calibration.probability(sure) == pytest.approx(0.9, abs=0.04)
    assert calibration.probability(doubtful) == pytest.approx(0.1, abs=0.04)
    assert calibration.probability(Signals(0.8, 0.9, 0.9, 0.2)) < calibration.probability(sure)


def test_a_calibration_trusts_small_boxes_less_when_they_are_less_often_right() -> None:
    """The same score, margin and no-target probability, right 90 % of the time on boxes a tenth of the
    frame's side and 60 % on boxes three hundredths: the fit tells them apart, and the size alone is why."""
    large, small = Signals(0.8, 0.9, 0.05, 0.1), Signals(0.8, 0.9, 0.05, 0.03)
    calibration = fitted({large: 0.9, small: 0.6}, 600, seed=2)
    assert calibration.probability(large) == pytest.approx(0.9, abs=0.04)
    assert calibration.probability(small) == pytest.approx(0.6, abs=0.05)
    held = [calibration.probability(Signals(0.8, 0.9, 0.05, size)) for size in (0.0, 0.01, 0.1, 0.5)]
    assert held[0] == held[1] and held[2] == held[3]  # sizes are read within [SMALLEST, LARGEST]


def test_a_calibration_round_trips_through_a_manifest_and_refuses_other_signals() -> None:
    calibration = Calibration((1.0, 2.0, -1.0, 0.1, 0.2, 0.3, 0.5), {"split": "val"}, {"ece": 0.01})
    again = Calibration.from_manifest(json.loads(json.dumps(calibration.to_manifest())))
    assert again == calibration and again.fitted_on == {"split": "val"}
    assert Calibration.from_manifest(None) is None
    with pytest.raises(ValueError, match="calibrate again"):
        Calibration.from_manifest({**calibration.to_manifest(), "signals": ["score"]})
    signed = Calibration((1.0, 2.0, -1.0, 0.1, 0.2, 0.3, 0.5), {"weights": "abc"})
    assert Calibration.from_manifest(signed.to_manifest(), "abc") == signed
    with pytest.raises(ValueError, match="other weights"):
        Calibration.from_manifest(signed.to_manifest(), "def")
    with pytest.raises(ValueError, match="finite"):
        Calibration((1.0, float("nan"), 0.0, 0.0, 0.0, 0.0, 0.0))
    assert len(features(Signals(0.5, 0.5, 0.5, 0.5))) == len(FEATURES) and len(SIGNALS) == 4


def test_each_candidate_s_margin_is_over_the_best_other_one() -> None:
    found = [Detection((0, 0, 9, 9), 0.8, "cup"), Detection((20, 0, 29, 9), 0.4, "cup")]
    best, runner = signals(found, 0.05, (90, 40))  # a 9×9 box in a 40×90 frame: side share √(81 / 3600)
    assert best == Signals(0.8, 0.5, 0.05, 0.15) and runner == Signals(0.4, -1.0, 0.05, 0.15)
    assert signals(found[:1], 0.2, (9, 9)) == [Signals(0.8, 1.0, 0.2, 1.0)]


def test_a_phrase_naming_no_known_object_is_not_grounded(tiny_model) -> None:
    image = world_sample(0, 0, "test").image(160, 120)
    answer = tiny_model.find(image, "the scissors")
    assert not answer.found and answer.detections == () and answer.confidence == 0.0
    assert answer.unknown_words == ("scissors",) and "names no object" in answer.reason
    mug = tiny_model.find(image, "the mug", threshold=0.0)
    assert mug.found and mug.unknown_words == () and mug.detections[0].label == "the cup"


def test_no_box_below_the_threshold_is_returned(tiny_model) -> None:
    """The tiny random model is never sure: at threshold 0 it answers with its box, at 1 with none and the
    reason; the JSON carries every field a planner reads."""
    image = world_sample(0, 0, "test").image(160, 120)
    anything = tiny_model.find(image, "the red cup", threshold=0.0)
    assert anything.found and len(anything.detections) == 1
    assert anything.detections[0].score == pytest.approx(anything.confidence)
    nothing = tiny_model.find(image, "the red cup", threshold=1.0)
    assert not nothing.found and nothing.detections == () and nothing.reason
    assert set(nothing.to_json()) == {"phrase", "found", "confidence", "detections", "unknown_words", "nearest",
                                      "out_of_domain", "calibrated", "reason", "latency_ms"}  # fmt: skip
    assert not nothing.calibrated and nothing.to_json()["latency_ms"] > 0
    with pytest.raises(ValueError, match="probability"):
        tiny_model.find(image, "the red cup", threshold=1.5)


def test_trust_rows_cover_present_and_no_target_expressions(tiny_model) -> None:
    rows = trust.collect(tiny_model, "val", 2)
    assert any(r.present for r in rows) and any(not r.present for r in rows)
    assert not any(r.right for r in rows if not r.present)
    report = trust.report(rows, None, threshold=0.0)
    assert report["no_target_accuracy"] == 0.0  # at threshold 0 everything is "found"
    assert report["present"] + report["no_target"] == report["answers"] == len(rows)
    assert sum(b["count"] for b in report["reliability"]) == len(rows)


def test_trust_by_kind_counts_hand_made_rows() -> None:
    """By kind, on hand-made rows scored by the raw score at 0.5: relation has one right and found, one wrong
    and found, one no-target found; category one no-target not found."""
    sure, unsure = Signals(0.9, 1.0, 0.0, 0.2), Signals(0.1, 1.0, 0.9, 0.2)
    rows = [trust.Row(sure, True, True, "relation"), trust.Row(sure, True, False, "relation"),
            trust.Row(sure, False, False, "relation"), trust.Row(unsure, False, False, "category")]  # fmt: skip
    kinds = trust.report(rows, None, threshold=0.5)["by_kind"]
    assert kinds["relation"] == {"present": 2, "acc50": 0.5, "found_and_right": 0.5, "found_but_wrong": 0.5,
                                 "no_target": 1, "not_found": 0.0}  # fmt: skip
    assert kinds["category"] == {"no_target": 1, "not_found": 1.0}


def test_an_answer_that_fails_a_check_is_not_found_whatever_its_score() -> None:
    sure = Signals(0.9, 1.0, 0.0, 0.2)
    rows = [trust.Row(sure, False, False, "ordinal", "ordinal"), trust.Row(sure, True, True, "ordinal", "ordinal"),
            trust.Row(sure, False, False, "relation", "relation"), trust.Row(sure, True, True, "category"),
            trust.Row(sure, False, False, "category", "closer_look"),
            trust.Row(sure, False, False, "category", "category")]  # fmt: skip
    report = trust.report(rows, None, threshold=0.5)
    assert report["checks_failed"] == {"relation": 1, "ordinal": 1 + 1, "closer_look": 1, "category": 1}
    assert report["no_target_accuracy"] == 1.0  # the no-target answers all failed their check: probability 0
    assert report["found_and_right"] == 0.5 and report["acc@0.5"] == 1.0  # the right box the check failed: not found


def test_eval_trust_reports_calibration_and_no_target_answers(tiny_model_dir, capsys) -> None:
    from echogen_ros.cli import main

    common = ["--model", str(tiny_model_dir), "--json", "--trust"]
    assert main(["eval", "--world", "val", "--count", "2", *common, "--threshold", "0"]) == 0
    report = json.loads(capsys.readouterr().out)["trust"]
    assert report["no_target"] > 0 and report["no_target_accuracy"] == 0.0 and not report["calibrated"]
    assert {"ece", "auroc", "found_but_wrong", "acc@0.5", "raw_score"} <= set(report)
    assert main(["eval", "--world", "val", "--count", "1", *common, "--scale-band", "0.5-0.7"]) == 0
    assert set(json.loads(capsys.readouterr().out)["trust_by_scale_band"]) == {"0.5-0.7"}
    assert main(["eval", "--world", "val", "--count", "1", *common, "--threshold", "2"]) == 2
    assert "--threshold is a probability" in capsys.readouterr().err
