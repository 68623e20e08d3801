"""training/scripts/ship_model.py: a finished run becomes a 16-bit model directory carrying its training
record; re-shipping a shipped model (one trained elsewhere, its runs not here) keeps that record."""

from __future__ import annotations

import json
from pathlib import Path

from echogen_training.loop import Trainer
from safetensors import safe_open


def test_ship_records_the_runs_and_reshipping_keeps_the_record(tiny_config, script, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    config = tiny_config("vision", f"run.out={runs / 'tabletop_vision'}")
    assert Trainer(config).run() == 0
    ship = script("ship_model")
    assert ship.main([str(runs / "tabletop_vision" / "final"), "--runs", str(runs), "--out", str(tmp_path / "a")]) == 0
    manifest = json.loads((tmp_path / "a" / "echogen.json").read_text())
    record = manifest["training"]["vision"]
    assert list(manifest["training"]) == ["vision"] and record["steps"] == 3 and record["wall_s"] > 0
    assert record["config"]["optim"]["max_steps"] == 3
    with safe_open(str(tmp_path / "a" / "model.safetensors"), "pt") as weights:
        assert {weights.get_slice(k).get_dtype() for k in weights.keys()} == {"F16"}  # noqa: SIM118
    assert ship.main([str(tmp_path / "a"), "--runs", str(tmp_path / "none"), "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "echogen.json").read_text())["training"] == manifest["training"]


def test_a_continued_model_keeps_the_record_and_appends_the_continuation(tiny_config, script, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert Trainer(tiny_config("vision", f"run.out={runs / 'tabletop_vision'}")).run() == 0
    ship = script("ship_model")
    assert ship.main([str(runs / "tabletop_vision" / "final"), "--runs", str(runs), "--out", str(tmp_path / "a")]) == 0
    shipped = json.loads((tmp_path / "a" / "echogen.json").read_text())["training"]
    more = tiny_config("pmtp", f"model.init={tmp_path / 'a'}", f"run.out={tmp_path / 'more'}", "model.layout_map=true")
    assert Trainer(more).run() == 0
    none = str(tmp_path / "none")
    args = [str(tmp_path / "more" / "final"), "--runs", none, "--out", str(tmp_path / "b")]
    assert ship.main([*args, "--continuation", str(tmp_path / "more")]) == 0
    record = json.loads((tmp_path / "b" / "echogen.json").read_text())["training"]
    assert record["vision"] == shipped["vision"]
    (continued,) = record["continuations"]
    assert continued["stage"] == "pmtp" and continued["steps"] == 3 and continued["run"] == "more"
    assert continued["config"]["model"]["layout_map"] is True
    assert ship.main([*args, "--continuation", none]) == 2  # not a run: refused, nothing half-written


def test_a_vision_transplant_is_recorded_in_its_place_among_the_continuations(
    tiny_config, script, tmp_path: Path
) -> None:
    from echogen_ros.model.echogen import EchoGen

    runs = tmp_path / "runs"
    assert Trainer(tiny_config("vision", f"run.out={runs / 'tabletop_vision'}")).run() == 0
    ship = script("ship_model")
    assert ship.main([str(runs / "tabletop_vision" / "final"), "--runs", str(runs), "--out", str(tmp_path / "a")]) == 0
    donor = EchoGen.create("tiny", seed=5).save(tmp_path / "donor")
    transplant = [str(tmp_path / "a"), str(donor), "--out", str(tmp_path / "tx"), "--steps", "3", "--batch", "2"]
    assert script("transplant_vision").main(transplant) == 0
    assert Trainer(tiny_config("pmtp", f"model.init={tmp_path / 'tx'}", f"run.out={tmp_path / 'more'}")).run() == 0
    args = [str(tmp_path / "more" / "final"), "--runs", str(tmp_path / "none"), "--out", str(tmp_path / "b")]
    assert ship.main([*args, "--continuation", str(tmp_path / "tx"), "--continuation", str(tmp_path / "more")]) == 0
    training = json.loads((tmp_path / "b" / "echogen.json").read_text())["training"]
    assert "vision_transplant" not in training  # not twice: it is in the list, where it happened
    swapped, continued = training["continuations"]
    assert swapped["stage"] == "vision_transplant" and swapped["run"] == "tx" and swapped["steps"] == 3
    assert swapped["donor"] == str(donor.resolve()) and swapped["wall_s"] > 0
    assert continued["stage"] == "pmtp" and continued["run"] == "more"
    # the continued run's model inherits the transplant's manifest record, but it is no transplant
    again = [*args[:-1], str(tmp_path / "c"), "--continuation", str(tmp_path / "more" / "final")]
    assert ship.main(again) == 2 and not (tmp_path / "c").exists()
    (tmp_path / "tx" / "vision_transplant.json").write_text("{not json")
    assert ship.main([*args[:-1], str(tmp_path / "c"), "--continuation", str(tmp_path / "tx")]) == 2
