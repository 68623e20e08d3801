"""COCO / RefCOCO loaders on fixture files in the real formats, the world stream, and batching."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from echogen_training.config import DataConfig
from echogen_training.data.batches import (
    IGNORE,
    Batcher,
    fade,
    names_colour,
    patch_categories,
    rotate_hue,
    to_pixels,
    without_colours,
)
from echogen_training.data.coco import load_coco, read_refs
from echogen_training.data.sources import build_stream, random_layout

from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.letterbox import Letterbox
from echogen_ros.world.catalog import CATEGORIES, COLOURS


def _write_coco(root: Path) -> None:
    (root / "images").mkdir(parents=True)
    for name, shape in (("a.jpg", (60, 80, 3)), ("b.jpg", (50, 50, 3))):
        cv2.imwrite(str(root / "images" / name), np.full(shape, 128, np.uint8))
    instances = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 80, "height": 60},
                   {"id": 2, "file_name": "b.jpg", "width": 50, "height": 50}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 30], "area": 600, "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 2, "bbox": [40, 10, 30, 20], "area": 600, "iscrowd": 0},
            {"id": 12, "image_id": 2, "category_id": 2, "bbox": [45, 45, 20, 20], "area": 400, "iscrowd": 0},  # outside
            {"id": 13, "image_id": 2, "category_id": 1, "bbox": [1, 1, 10, 10], "area": 100, "iscrowd": 1},  # crowd
        ],
        "categories": [{"id": 1, "name": "cup"}, {"id": 2, "name": "plate"}],
    }  # fmt: skip
    captions = {
        "images": instances["images"],
        "annotations": [{"id": 1, "image_id": 1, "caption": "a cup and a plate"}],
    }
    (root / "instances_train2017.json").write_text(json.dumps(instances))
    (root / "captions_train2017.json").write_text(json.dumps(captions))
    (root / "instances.json").write_text(json.dumps(instances))
    refs = [  # the last: a no-target ref (gRefCOCO's), as `echogen world` writes them; readers skip it
        {"ref_id": 0, "image_id": 1, "ann_id": 11, "category_id": 2, "split": "train",
         "sentences": [{"sent": "the plate on the right", "tokens": [], "raw": "", "sent_id": 0}], "sent_ids": [0]},
        {"ref_id": 1, "image_id": 1, "ann_id": 10, "category_id": 1, "split": "val",
         "sentences": [{"sent": "the cup", "tokens": [], "raw": "", "sent_id": 1}], "sent_ids": [1]},
        {"ref_id": 2, "image_id": 1, "ann_id": [], "category_id": 1, "split": "train", "no_target": True,
         "sentences": [{"sent": "the blue cup", "tokens": [], "raw": "", "sent_id": 2}], "sent_ids": [2]},
    ]  # fmt: skip
    with (root / "refs(unc).p").open("wb") as f:
        pickle.dump(refs, f, protocol=2)


def test_coco_instances_and_captions(tmp_path: Path) -> None:
    _write_coco(tmp_path)
    stream = build_stream(DataConfig(source="coco", path=str(tmp_path)))
    records = [stream.make(i) for i in range(stream.size)]
    assert len(records) == 1  # image 2 has only an out-of-image box and a crowd box
    record = records[0]
    assert record.caption == "a cup and a plate"
    assert record.objects == [("cup", (5.0, 5.0, 25.0, 35.0)), ("plate", (40.0, 10.0, 70.0, 30.0))]
    assert record.load_image().shape == (60, 80, 3)


def test_refcoco_pickle_by_split(tmp_path: Path) -> None:
    _write_coco(tmp_path)
    (train,) = [
        r
        for r in load_coco([tmp_path / "instances.json"], tmp_path / "images", tmp_path / "refs(unc).p", "train")
        if r.refs
    ]
    assert train.refs == [("the plate on the right", (40.0, 10.0, 70.0, 30.0))]
    stream = build_stream(DataConfig(source="refcoco", path=str(tmp_path), split="val"))
    assert [r for i in range(stream.size) for r in stream.make(i).refs] == [("the cup", (5.0, 5.0, 25.0, 35.0))]


def test_refs_unpickler_refuses_classes(tmp_path: Path) -> None:
    path = tmp_path / "refs(evil).p"
    path.write_bytes(pickle.dumps([{"x": Path("/")}]))
    with pytest.raises(pickle.UnpicklingError, match="plain data only"):
        read_refs(path)


def test_world_export_folder_is_a_source(world_export: Path) -> None:
    stream = build_stream(DataConfig(source="folder", path=str(world_export)))
    record = next(stream)
    assert record.objects and record.refs and record.caption.endswith(".")


def test_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_stream(DataConfig(source="coco", path=str(tmp_path / "nope")))
    with pytest.raises(FileNotFoundError, match="instances"):
        build_stream(DataConfig(source="coco", path=str(tmp_path)))


def test_world_stream_is_resumable_and_sharded() -> None:
    config = DataConfig(source="world", count=10, render_scales=(0.25,))
    a = build_stream(config)
    first = [a.index(p) for p in range(25)]
    assert sorted(first[:10]) == list(range(10)) and sorted(first[10:20]) == list(range(10))  # epochs
    ranks = [build_stream(config, rank=r, world=2) for r in (0, 1)]
    assert [ranks[0].index(p) for p in range(5)] == first[0:10:2]
    assert [ranks[1].index(p) for p in range(5)] == first[1:10:2]
    b = build_stream(config)
    b.position = 7
    assert next(b).caption == a.make(first[7]).caption


def test_batches_left_pad_and_label_only_targets() -> None:
    model = EchoGen.create("tiny")
    batcher = Batcher(model, seed=0)
    stream = build_stream(DataConfig(source="world", count=8, render_scales=(0.25,)))
    records = stream.take(4)
    i2l = batcher.i2l(records)
    seq = i2l.seq
    assert i2l.pixels.shape == (4, 3, model.vision_size, model.vision_size)
    assert (seq.mask[:, -1] == 1).all() and ((seq.labels != IGNORE).sum(1) == 6).all()
    assert (seq.ids[seq.mask == 0] == model.scheme.pad).all()
    l2i = batcher.l2i(records, condition_dropout=1.0)
    assert l2i.gen_pixels.shape == (4, 3, model.image_size, model.image_size)
    for ids, mask in zip(l2i.seq.ids, l2i.seq.mask):  # every condition masked by dropout 1.0
        assert set(ids[mask == 1][2:-1].tolist()) == {model.scheme.pad}
    objects, caption = random_layout(np.random.default_rng(0))
    assert objects and all(0 <= v <= 1 for _, box in objects for v in box)


def test_decoloured_patch_batches_are_grey_and_lose_colour_words() -> None:
    """vision.decolour: a grey frame (R = G = B) whose targets keep category words but no colour words;
    at 0 the batch is the plain one (and the batcher's random stream is untouched)."""
    model = EchoGen.create("tiny")
    records = build_stream(DataConfig(source="world", count=8, render_scales=(0.25,))).take(4)
    grid, vocab = round(model.scheme.image_tokens**0.5), model.tokenizer.get_vocab_size()
    plain = Batcher(model, seed=0).patches(records, grid, vocab)
    again = Batcher(model, seed=0).patches(records, grid, vocab, decolour=0.0)
    assert torch.equal(plain.pixels, again.pixels) and torch.equal(plain.words, again.words)
    grey = Batcher(model, seed=0).patches(records, grid, vocab, decolour=1.0)
    assert torch.equal(grey.pixels[:, 0], grey.pixels[:, 1]) and torch.equal(grey.pixels[:, 1], grey.pixels[:, 2])
    assert not torch.equal(plain.pixels[:, 0], plain.pixels[:, 1])
    colour_ids = [model.tokenizer.token_to_id(c) for c in COLOURS]
    category_ids = [model.tokenizer.token_to_id(c) for c in CATEGORIES]
    assert plain.words[..., colour_ids].sum() > 0 and grey.words[..., colour_ids].sum() == 0
    assert torch.equal(grey.words[..., category_ids], plain.words[..., category_ids])
    assert torch.equal(grey.present, plain.present) and torch.equal(grey.boxes, plain.boxes)


def test_rotate_hue_turns_palette_colours_and_keeps_grey() -> None:
    """A red patch turned by 120° is green, by 240° blue; grey pixels (no hue) stay as they are; a full turn
    gives the frame back (up to the 8-bit HSV round trip)."""
    frame = np.zeros((2, 2, 3), dtype=np.uint8)
    frame[0, 0], frame[0, 1], frame[1, :] = (205, 38, 38), (128, 128, 128), (38, 78, 200)
    green, blue = rotate_hue(frame, 120.0), rotate_hue(frame, 240.0)
    assert green[0, 0].argmax() == 1 and blue[0, 0].argmax() == 2
    assert np.array_equal(green[0, 1], frame[0, 1]) and np.array_equal(blue[0, 1], frame[0, 1])
    for back in (rotate_hue(frame, 0.0), rotate_hue(green, 240.0)):
        assert int(np.abs(back.astype(int) - frame.astype(int)).max()) <= 3


def test_recoloured_patch_batches_change_hue_and_lose_colour_words() -> None:
    """vision.recolour: colour frames whose hues moved, targets without colour words, geometry unchanged."""
    model = EchoGen.create("tiny")
    records = build_stream(DataConfig(source="world", count=8, render_scales=(0.25,))).take(4)
    grid, vocab = round(model.scheme.image_tokens**0.5), model.tokenizer.get_vocab_size()
    plain = Batcher(model, seed=0).patches(records, grid, vocab)
    turned = Batcher(model, seed=0).patches(records, grid, vocab, recolour=1.0)
    assert not torch.equal(turned.pixels[:, 0], turned.pixels[:, 1])  # still colour
    changed = (turned.pixels - plain.pixels).abs().amax(dim=(1, 2, 3))
    assert bool((changed > 0.2).all())  # every frame turned by at least 30°
    colour_ids = [model.tokenizer.token_to_id(c) for c in COLOURS]
    category_ids = [model.tokenizer.token_to_id(c) for c in CATEGORIES]
    assert plain.words[..., colour_ids].sum() > 0 and turned.words[..., colour_ids].sum() == 0
    assert torch.equal(turned.words[..., category_ids], plain.words[..., category_ids])
    assert torch.equal(turned.present, plain.present) and torch.equal(turned.boxes, plain.boxes)
    # both at once: each frame gets exactly one of them (grey or turned), and no colour word survives
    both = Batcher(model, seed=0).patches(records * 4, grid, vocab, decolour=0.5, recolour=0.5)
    grey = [torch.equal(p[0], p[1]) and torch.equal(p[1], p[2]) for p in both.pixels]
    assert 0 < sum(grey) < len(grey) and both.words[..., colour_ids].sum() == 0
    assert not any(torch.equal(b, p) for b, p in zip(both.pixels, torch.cat([plain.pixels] * 4)))


def _as_rendered(model: EchoGen, record) -> torch.Tensor:
    """A record's frame as grounding sees it without any colour change: letterboxed, in [-1, 1]."""
    return to_pixels([Letterbox(record.width, record.height, model.vision_size).apply(record.load_image())])[0]


def test_grounding_frames_are_turned_only_when_the_expression_names_no_colour() -> None:
    """pmtp.recolour: an expression without a colour word may see its frame's hues turned (the referent is
    the same object), one naming a colour always sees the frame as rendered; sequences are not touched."""
    model = EchoGen.create("tiny")
    records = build_stream(DataConfig(source="world", count=16, render_scales=(0.25,))).take(16)
    batch = Batcher(model, seed=0).i2l(records, recolour=1.0)
    colour_ids = {model.tokenizer.token_to_id(c) for c in COLOURS}
    kept = turned = 0
    for row, record in enumerate(r for r in records if r.refs):
        plain = _as_rendered(model, record)
        ids = set(batch.seq.ids[row][batch.seq.mask[row] > 0].tolist())
        assert bool(ids & colour_ids) == names_colour(model.tokenizer.decode(list(ids)))
        if ids & colour_ids:
            assert torch.equal(batch.pixels[row], plain)
            kept += 1
        else:
            assert float((batch.pixels[row] - plain).abs().max()) > 0.2
            turned += 1
    assert kept and turned  # the world's expressions come both ways
    untouched = Batcher(model, seed=0).i2l(records)
    assert all(torch.equal(p, _as_rendered(model, r)) for p, r in zip(untouched.pixels, [r for r in records if r.refs]))


def test_fade_pales_colours_toward_the_grey_of_their_brightest_channel() -> None:
    """A yellow patch faded to saturation 0 is the white-ish grey of its brightest channel; 1 keeps it."""
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[:2] = (236, 204, 40)  # the world's yellow
    frame[2:] = (38, 78, 200)  # its blue
    pale = fade(frame, 0.0)
    assert np.abs(pale[0, 0].astype(int) - 236).max() <= 1 and np.abs(pale[3, 3].astype(int) - 200).max() <= 1
    assert np.abs(fade(frame, 1.0).astype(int) - frame).max() <= 2  # HSV round trip
    half = fade(frame, 0.5)[0, 0].astype(int)
    assert half[0] >= half[1] > 204 and half[2] > 100  # paler, same hue order
    with pytest.raises(ValueError, match="saturation"):
        fade(frame, 1.5)


def test_grounding_frames_are_faded_only_when_the_expression_names_no_colour() -> None:
    """pmtp.desaturate: like recolour, colour-free expressions see pale frames, colour-naming ones never; a
    batch without it draws what it drew before (the same turned frames), and the two cannot exceed 1."""
    model = EchoGen.create("tiny")
    records = build_stream(DataConfig(source="world", count=16, render_scales=(0.25,))).take(16)
    batch = Batcher(model, seed=0).i2l(records, desaturate=1.0)
    colour_ids = {model.tokenizer.token_to_id(c) for c in COLOURS}
    faded = 0
    for row, record in enumerate(r for r in records if r.refs):
        plain = _as_rendered(model, record)
        if set(batch.seq.ids[row][batch.seq.mask[row] > 0].tolist()) & colour_ids:
            assert torch.equal(batch.pixels[row], plain)
            continue
        pixels = batch.pixels[row]  # (3, S, S) in [-1, 1]: a pale frame's channels are closer together
        assert float((pixels.max(0).values - pixels.min(0).values).mean()) < float(
            (plain.max(0).values - plain.min(0).values).mean()
        )
        faded += 1
    assert faded
    turned = Batcher(model, seed=0).i2l(records, recolour=0.5)
    assert torch.equal(turned.pixels, Batcher(model, seed=0).i2l(records, recolour=0.5, desaturate=0.0).pixels)
    with pytest.raises(ValueError, match="sum to at most 1"):
        Batcher(model, seed=0).i2l(records, recolour=0.6, desaturate=0.6)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("the red cup", True),
        ("The RED cup", True),
        ("guy in black", True),
        ("the cup left of the plate", False),
        ("the second bowl from the left", False),
        ("reddish", False),
        ("", False),
    ],
)
def test_an_expression_names_a_colour_by_its_words_in_any_case(text: str, names: bool) -> None:
    assert names_colour(text) is names


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("the red cup", "the cup"),
        ("The RED cup, left", "The cup, left"),
        ("guy in black shirt", "guy in shirt"),
        ("reddish bowl", "reddish bowl"),
        ("red", ""),
    ],
)
def test_colour_words_are_taken_out_as_words_in_any_case(text: str, plain: str) -> None:
    """Vision targets of grey or turned frames drop colour words by text, so any tokenizer drops them whole."""
    assert without_colours(text) == plain and not names_colour(plain)


def test_no_target_rows_answer_with_the_empty_box_and_point_nowhere() -> None:
    """pmtp.no_target: a row may ask for one of its frame's no-target expressions; its labels are the empty
    box (`</box> <eos>`, no coordinate bins) and its pointer target is ignored. Without it the batch is the
    one drawn before no-target rows existed."""
    model = EchoGen.create("tiny")
    records = build_stream(DataConfig(source="world", count=12, render_scales=(0.25,))).take(12)
    assert all(r.absent for r in records)  # every world scene lacks some category
    scheme = model.scheme
    batch = Batcher(model, seed=0).i2l(records, no_target=1.0)
    for row, record in enumerate(r for r in records if r.refs):
        labels = batch.seq.labels[row][batch.seq.labels[row] != IGNORE].tolist()
        assert labels == [scheme.no_target, scheme.special["<eos>"]]
        text = model.tokenizer.decode(batch.seq.ids[row][batch.seq.mask[row] > 0].tolist())
        assert any(a.split()[-1] in text for a in record.absent)
    assert bool((batch.patch == IGNORE).all())
    mixed = Batcher(model, seed=0).i2l(records, no_target=0.5)
    empty = [(r[r != IGNORE][0] == scheme.no_target).item() for r in mixed.seq.labels]
    assert any(empty) and not all(empty)
    before, after = Batcher(model, seed=0).i2l(records), Batcher(model, seed=0).i2l(records, no_target=0.0)
    assert torch.equal(before.seq.ids, after.seq.ids) and torch.equal(before.patch, after.patch)


def test_no_target_relation_asks_for_the_relation_no_object_satisfies() -> None:
    """pmtp.no_target_relation = 1: every no-target row of a frame with a relation no object satisfies asks for
    that one; frames without one still get a no-target row; 0 draws exactly what was drawn before."""
    model = EchoGen.create("tiny")
    records = [r for r in build_stream(DataConfig(source="world", count=24, render_scales=(0.25,))).take(24)
               if r.refs]  # fmt: skip
    assert all(len(r.absent) == len(r.absent_kinds) for r in records)
    relations = [r.absent[r.absent_kinds.index("relation")] for r in records if "relation" in r.absent_kinds]
    assert relations and len(relations) < len(records)  # some frames have one, some do not
    batch = Batcher(model, seed=0).i2l(records, no_target=1.0, no_target_relation=1.0)
    asked = [model.tokenizer.decode(batch.seq.ids[row][batch.seq.mask[row] > 0].tolist())
             for row in range(len(records))]  # fmt: skip
    for record, text in zip(records, asked):
        wanted = [a for a, k in zip(record.absent, record.absent_kinds) if k == "relation"] or record.absent
        assert any(w in text for w in wanted), (text, wanted)
    before = Batcher(model, seed=0).i2l(records, no_target=0.5)
    after = Batcher(model, seed=0).i2l(records, no_target=0.5, no_target_relation=0.0)
    assert torch.equal(before.seq.ids, after.seq.ids)


def test_the_pointer_loss_skips_rows_without_a_target() -> None:
    from echogen_training.forward import i2l_loss

    model = EchoGen.create("tiny")
    records = build_stream(DataConfig(source="world", count=6, render_scales=(0.25,))).take(6)
    pointer = torch.nn.Linear(model.model.config.text_config.hidden_size, 1)
    for chance in (1.0, 0.5):
        batch = Batcher(model, seed=1).i2l(records, no_target=chance)
        loss, _, pointer_loss, _ = i2l_loss(model.model, batch, pointer=pointer)
        assert torch.isfinite(loss) and torch.isfinite(pointer_loss)
    assert float(i2l_loss(model.model, Batcher(model, seed=1).i2l(records, no_target=1.0), pointer=pointer)[2]) == 0


def test_patch_categories_name_the_object_centred_in_each_patch() -> None:
    letterbox = Letterbox(200, 100, 100)  # the frame is scaled by 0.5 and padded 25 px above and below
    objects = [
        ("the red cup", (0.0, 0.0, 40.0, 40.0)),  # centre (10, 35) in the letterboxed square: patch (0, 1) of 4 × 4
        ("blue plate", (100.0, 40.0, 200.0, 100.0)),  # centre (75, 60): patch (3, 2), shared with the ball
        ("green ball", (140.0, 60.0, 160.0, 80.0)),  # centre (75, 60) too, smaller: it wins the patch
        ("a person", (0.0, 60.0, 40.0, 100.0)),  # no world category: left out
    ]
    cells = patch_categories(objects, letterbox, 4)
    assert len(cells) == 16
    assert cells[1 * 4 + 0] == CATEGORIES.index("cup")
    assert cells[2 * 4 + 3] == CATEGORIES.index("ball")
    assert sum(c != IGNORE for c in cells) == 2  # the plate lost its patch, the person never had one
    assert patch_categories([], letterbox, 4) == [IGNORE] * 16


def test_grounding_batches_carry_the_patch_categories_only_when_asked() -> None:
    model = EchoGen.create("tiny")
    records = build_stream(DataConfig(source="world", count=4, render_scales=(0.25,))).take(4)
    plain = Batcher(model, seed=1).i2l(records, recolour=0.5, desaturate=0.5)
    named = Batcher(model, seed=1).i2l(records, recolour=0.5, desaturate=0.5, categories=True)
    assert plain.categories is None
    assert torch.equal(plain.pixels, named.pixels) and torch.equal(plain.seq.ids, named.seq.ids)  # nothing else drawn
    grid = round(model.scheme.image_tokens**0.5)
    assert named.categories.shape == (len(named.pixels), grid * grid)
    for row, record in enumerate(records):  # hue turns and fading keep every object's category
        letterbox = Letterbox(record.width, record.height, model.vision_size)
        assert named.categories[row].tolist() == patch_categories(record.objects, letterbox, grid)
        assert (named.categories[row] != IGNORE).sum() >= 1


def test_the_category_loss_on_hand_made_numbers() -> None:
    from echogen_training.forward import category_loss

    head = torch.nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
    # layer-normed, each feature (a, b) is (1, -1) or (-1, 1) times one: the logits (1, -1, 0) and (-1, 1, 0)
    features = torch.tensor([[[3.0, 1.0], [0.0, 2.0], [5.0, 5.0001]]])
    categories = torch.tensor([[0, 0, IGNORE]])
    loss, accuracy = category_loss(head, features, categories)
    sure, wrong = (
        torch.log_softmax(torch.tensor([1.0, -1.0, 0.0]), 0),
        torch.log_softmax(torch.tensor([-1.0, 1.0, 0.0]), 0),
    )
    torch.testing.assert_close(loss, -(sure[0] + wrong[0]) / 2, atol=1e-4, rtol=1e-4)
    assert float(accuracy) == 0.5
    none, _ = category_loss(head, features, torch.full((1, 3), IGNORE))
    assert float(none.detach()) == 0.0 and none.requires_grad
    with pytest.raises(ValueError, match="patches"):
        category_loss(head, features, torch.zeros((1, 4), dtype=torch.long))  # a grid other than the features'


def test_world_stream_draws_the_configured_object_sizes_and_border_cuts() -> None:
    """data.scale_range and data.border_cut reach the world: objects at × 0.5 are smaller than at × 1.6, and
    the default (1, 1) draws exactly the scenes it drew before the options existed."""

    def areas(**options) -> list[float]:
        records = build_stream(DataConfig(source="world", count=12, render_scales=(1.0,), **options)).take(12)
        return [(b[2] - b[0]) * (b[3] - b[1]) for r in records for _, b in r.objects]

    small, large = areas(scale_range=(0.5, 0.5)), areas(scale_range=(1.6, 1.6))
    assert np.median(small) < 0.4 * np.median(large)
    assert areas() == areas(scale_range=(1.0, 1.0), border_cut=0.0)
    cut = build_stream(DataConfig(source="world", count=40, render_scales=(1.0,), border_cut=0.3,
                                  scale_range=(1.3, 1.6), max_objects=12)).take(40)  # fmt: skip
    assert any(b[0] <= 0.0 or b[2] >= r.width or b[3] >= r.height for r in cut for _, b in r.objects)
    assert max(len(r.objects) for r in cut) > 8
