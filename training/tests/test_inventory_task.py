"""The PMTP `inventory` task: its rows (built from a record's objects, sharing the grounding batch's frames shown
as recorded), the capability a run records, a tiny model trained on one scene that then lists it, and
`echogen-train calibrate-inventory` on that model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from echogen_training import tools
from echogen_training.config import ConfigError, load_config
from echogen_training.data.batches import Batcher, listed_label
from echogen_training.data.records import Record
from echogen_training.data.sources import build_stream
from echogen_training.loop import Trainer

from echogen_ros.model import inventory
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.layout import box_iou
from echogen_ros.model.letterbox import Letterbox
from echogen_ros.world.dataset import world_sample
from echogen_ros.world.scene import scene_config


@pytest.fixture(scope="module")
def tiny() -> EchoGen:
    return EchoGen.create("tiny", seed=0)


def records(tiny_config, count: int = 4) -> list:
    config = tiny_config("pmtp", f"data.count={count}", "data.max_objects=6")
    return build_stream(config.data, 0, 1).take(count)


def test_inventory_rows_list_every_object_in_order_sharing_the_frames_shown_as_recorded(tiny, tiny_config) -> None:
    batch = records(tiny_config)
    batcher = Batcher(tiny, seed=0)
    i2l = batcher.i2l(batch)
    listing = batcher.inventory(batch, i2l)
    assert listing.pixels.shape[0] == 0 and listing.image_index.tolist() == [0, 1, 2, 3]  # every frame shared
    scheme = tiny.scheme
    for row, ids, record in zip(listing.seq.labels, listing.seq.ids, batch):
        answer = row[row != -100].tolist()
        assert ids[-len(answer) - tiny.scheme.image_tokens - 2 :].tolist()[: -len(answer)] == scheme.inventory_prompt()
        listed = scheme.parse_inventory(answer)
        letterbox = Letterbox(record.width, record.height, tiny.vision_size)
        truth = [(listed_label(label), letterbox.normalised(box)) for label, box in record.objects]
        assert len(listed) == len(record.objects) and answer[-1] == scheme.special["<eos>"]
        tops = [(scheme.box_tokens(box)[1], scheme.box_tokens(box)[0]) for _, box in listed]
        assert tops == sorted(tops)  # top to bottom, then left to right
        for label_ids, box in listed:
            label = tiny.tokenizer.decode(label_ids)
            bins = scheme.box_tokens(box)  # the truth's own bins, back from their centres
            assert not label.startswith("the ") and (label, bins) in [(t, scheme.box_tokens(tb)) for t, tb in truth]


def test_frames_altered_for_grounding_are_listed_in_frames_of_their_own(tiny, tiny_config) -> None:
    batch = records(tiny_config)
    batcher = Batcher(tiny, seed=0)
    i2l = batcher.i2l(batch, tokenized=1.0)  # every grounding frame goes through the image tokenizer
    listing = batcher.inventory(batch, i2l)
    assert listing.image_index.tolist() == [4, 5, 6, 7] and listing.pixels.shape[0] == 4
    alone = batcher.inventory(batch)
    assert torch.equal(alone.pixels, listing.pixels) and alone.image_index.tolist() == [0, 1, 2, 3]


def test_an_inventory_is_truncated_at_the_models_max_objects(tiny, tiny_config) -> None:
    batch = records(tiny_config)
    batcher = Batcher(tiny, seed=0)
    batcher.max_objects = 2
    for row in batcher.inventory(batch).seq.labels:
        assert len(tiny.scheme.parse_inventory(row[row != -100].tolist())) == 2


def test_pmtp_tasks_must_be_known(tiny_config) -> None:
    with pytest.raises(ConfigError, match="pmtp.tasks must be some of l2i, i2l, inventory"):
        tiny_config("pmtp", "pmtp.tasks=[l2i, inventry]")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Record]:
    """A tiny model trained 100 steps on one scene (val scene 0 of seed 9: three objects), and that scene."""
    out = tmp_path_factory.mktemp("inventory") / "run"
    config = load_config(None, [
        "model.init=tiny", "pmtp.tasks=[i2l, inventory]", "data.split=val", "data.seed=9", "data.count=1",
        "data.batch_size=2", "data.render_scales=[0.25]", "optim.max_steps=100", "optim.warmup_steps=10",
        "optim.lr=1e-2", "eval.every=0", f"run.out={out}", "run.save_every=100", "run.log_every=10",
        "run.progress=false", "run.autocast=none",
    ], stage="pmtp")  # fmt: skip
    assert Trainer(config).run() == 0
    return out, build_stream(config.data, 0, 1).take(1)[0]


def test_a_tiny_model_trained_on_one_scene_lists_it(trained: tuple[Path, Record]) -> None:
    out, record = trained
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["inventory_ce"] < logged[0]["inventory_ce"] / 5
    model = EchoGen.load(out / "final")
    assert model.manifest["capabilities"] == ["inventory"]
    before = EchoGen.create("tiny", seed=0)
    before.manifest = inventory.with_capability(before.manifest)
    truth = sorted((listed_label(label), box) for label, box in record.objects)
    for listing, expect_right in ((model.parse_scene(record.load_image(), method="sequence"), True),
                                  (before.parse_scene(record.load_image(), method="sequence"), False)):  # fmt: skip
        found = sorted((d.label, d.box) for d in listing.objects)
        right = [t == f and box_iou(tb, fb) >= 0.5 for (t, tb), (f, fb) in zip(truth, found)]
        assert (len(found) == len(truth) and all(right)) == expect_right, (truth, found)


def test_calibrate_inventory_fits_on_val_and_scores_on_test(trained, tmp_path: Path, capsys) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(trained[0] / "final", model_dir)
    argv = ["--model", str(model_dir), "--scenes", "10", "--test-scenes", "10", "--seed", "9"]
    assert tools.main("calibrate-inventory", argv) == 0
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()  # the process is as it was
    entry = json.loads((model_dir / "echogen.json").read_text())[inventory.MANIFEST_KEY]
    assert json.loads(capsys.readouterr().out)["weights"] == entry["weights"]
    assert entry["fitted_on"]["split"] == "val" and entry["metrics"]["split"] == "test"
    assert 0 < entry["fitted_on"]["right"] < entry["fitted_on"]["listed"]  # val scene 0 right, the others not
    model = EchoGen.load(model_dir)
    frames = [world_sample(9, i, "val", scene_config(i)).image() for i in range(10)]
    listings = [model.parse_scene(frame, method="sequence") for frame in frames]
    scores = [d.score for listing in listings for d in listing.objects]
    assert all(listing.calibrated for listing in listings) and len(scores) == entry["fitted_on"]["listed"]
    # the fit's probabilities average to the share right where it was fitted (it lists its one scene everywhere,
    # equally sure: 0.1, not the raw score's 0.8)
    share = entry["fitted_on"]["right"] / entry["fitted_on"]["listed"]
    assert abs(sum(scores) / len(scores) - share) < 0.01
    assert all(d.score < 0.5 < s.score for d, s in zip(listings[0].objects, listings[0].signals))


def test_calibrate_inventory_refuses_a_model_that_cannot_list(tmp_path: Path, capsys) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "plain")
    before = (model_dir / "echogen.json").read_bytes()
    assert tools.main("calibrate-inventory", ["--model", str(model_dir)]) == 2
    assert "not trained to list a scene" in capsys.readouterr().err
    assert (model_dir / "echogen.json").read_bytes() == before
