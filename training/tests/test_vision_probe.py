"""experiments.vision_probe: the probe fitter separates separable classes, and the script reports
per-attribute accuracies on seen and held-out colour × category pairs of the world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from experiments import vision_probe


def test_probe_fits_separable_classes_and_not_noise() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=generator) * 4
    labels = torch.arange(4).repeat(50)
    x = centres[labels] + torch.randn(200, 16, generator=generator)
    fitted = vision_probe.fit_probe(x, labels, 4)
    test = centres[labels] + torch.randn(200, 16, generator=generator)
    assert (fitted(test).argmax(-1) == labels).float().mean() > 0.95
    shuffled = labels[torch.randperm(200, generator=generator)]  # labels unrelated to features
    fitted = vision_probe.fit_probe(x, shuffled, 4)
    assert (fitted(test).argmax(-1) == shuffled).float().mean() < 0.5


def test_script_reports_both_attributes_on_seen_and_heldout_pairs(capsys, tmp_path: Path) -> None:
    from echogen_ros.model.echogen import EchoGen

    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "tiny")
    assert vision_probe.main([str(model_dir), "--train-scenes", "6", "--test-scenes", "6"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["objects"]["train"] > 6 and report["objects"]["test"] > 6
    assert 0 < report["objects"]["test_heldout_pairs"] <= report["objects"]["test"]  # the split holds them
    for name in ("category", "colour"):
        assert set(report[name]) == {"train", "all", "seen_pairs", "heldout_pairs"}
        assert all(0.0 <= v <= 1.0 for v in report[name].values())
        shares = report[name]
        assert min(shares["seen_pairs"], shares["heldout_pairs"]) <= shares["all"]
        assert shares["all"] <= max(shares["seen_pairs"], shares["heldout_pairs"])  # every object: between the two
    assert report["scale"] == {"train": [1.0, 1.0], "test": [1.0, 1.0]}
    assert report["train_scenes"] == {"split": "train", "seed": 0}


def test_the_probe_fits_on_every_pair_and_objects_at_any_size(capsys, tmp_path: Path) -> None:
    from echogen_ros.model.echogen import EchoGen

    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "tiny")
    args = ["--train-scenes", "4", "--test-scenes", "4", "--train-split", "heldout", "--test-scale", "0.5", "0.7"]
    assert vision_probe.main([str(model_dir), *args]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["train_scenes"] == {"split": "heldout", "seed": 101}
    assert report["scale"]["test"] == [0.5, 0.7] and report["scale"]["train"] == [1.0, 1.0]
    with pytest.raises(SystemExit):  # a scale the world cannot draw: one line from argparse, exit 2
        vision_probe.main([str(model_dir), "--test-scale", "0.1", "0.2"])
