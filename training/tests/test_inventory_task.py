"""The PMTP `inventory` task: its rows (built from a record's objects, sharing the grounding batch's frames shown
as recorded), the capability a run records, and a tiny model trained on one scene that then lists it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from echogen_training.config import ConfigError
from echogen_training.data.batches import Batcher, listed_label
from echogen_training.data.sources import build_stream
from echogen_training.loop import Trainer

from echogen_ros.model import inventory
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.layout import box_iou
from echogen_ros.model.letterbox import Letterbox


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


def test_a_tiny_model_trained_on_one_scene_lists_it(tiny_config, tmp_path: Path) -> None:
    config = tiny_config(
        "pmtp", "pmtp.tasks=[i2l, inventory]", "data.count=1", "data.max_objects=3", "data.batch_size=2",
        "optim.max_steps=100",
        "optim.warmup_steps=10", "optim.lr=1e-2", "run.save_every=100", "run.log_every=10",
    )  # fmt: skip
    record = build_stream(config.data, 0, 1).take(1)[0]
    before = EchoGen.create("tiny", seed=0)
    before.manifest = inventory.with_capability(before.manifest)
    assert Trainer(config).run() == 0
    logged = [json.loads(line) for line in (Path(config.run.out) / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["inventory_ce"] < logged[0]["inventory_ce"] / 5
    model = EchoGen.load(Path(config.run.out) / "final")
    assert model.manifest["capabilities"] == ["inventory"]
    truth = sorted((listed_label(label), box) for label, box in record.objects)
    for listing, expect_right in ((model.parse_scene(record.load_image()), True),
                                  (before.parse_scene(record.load_image()), False)):  # fmt: skip
        found = sorted((d.label, d.box) for d in listing.objects)
        right = [t == f and box_iou(tb, fb) >= 0.5 for (t, tb), (f, fb) in zip(truth, found)]
        assert (len(found) == len(truth) and all(right)) == expect_right, (truth, found)
