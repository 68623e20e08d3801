"""experiments.vision_probe: the probe fitter separates separable classes, and the script reports
per-attribute accuracies on seen and held-out colour × category pairs of the world."""

from __future__ import annotations

import json
from pathlib import Path

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
        assert set(report[name]) == {"train", "seen_pairs", "heldout_pairs"}
        assert all(0.0 <= v <= 1.0 for v in report[name].values())
