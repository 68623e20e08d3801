"""experiments.vq_ceiling: real frames through the imagined-scene path without the generator; the
frame row is the detector on renders, the vq row is what the model grounds in the decoded tokens."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from echogen_training.data.batches import to_pixels
from echogen_training.evaluate import psnr
from experiments import vq_ceiling

from echogen_ros.evaluation.run import FAILURE_IOU, load_export
from echogen_ros.model import vq
from echogen_ros.model.echogen import DEFAULT_MODEL_DIR, EchoGen
from echogen_ros.model.generation import decode_image, label_boxes
from echogen_ros.model.layout import Layout, LayoutObject, box_iou
from echogen_ros.model.letterbox import Letterbox


@pytest.fixture(scope="module")
def model() -> EchoGen:
    return EchoGen.load()


def _scene(directory: Path, index: int) -> tuple[np.ndarray, Layout]:
    """An exported scene's frame (RGB) and its true layout, labelled as the layouts of imagined scenes are."""
    data = load_export(directory)
    names = {c["id"]: c["name"] for c in data["categories"]}
    info = data["images"][index]
    objects = [a for a in data["annotations"] if a["image_id"] == info["id"]]
    labels = [f"{a['attributes']['colour']} {names[a['category_id']]}" for a in objects]
    boxes = [(x, y, x + w, y + h) for x, y, w, h in (a["bbox"] for a in objects)]
    frame = cv2.cvtColor(cv2.imread(str(directory / "images" / info["file_name"])), cv2.COLOR_BGR2RGB)
    return frame, Layout(info["width"], info["height"], tuple(LayoutObject(t, b) for t, b in zip(labels, boxes)))


def test_rows_follow_the_imagined_scene_path(model: EchoGen, world_export: Path) -> None:
    frame, layout = _scene(world_export, 0)
    rows = vq_ceiling.versions(model, frame, layout)
    assert list(rows) == list(vq_ceiling.ROWS) and all(v.shape == frame.shape for v in rows.values())
    assert rows["frame"] is frame
    box = Letterbox(frame.shape[1], frame.shape[0], model.image_size)  # the VQ row by hand
    # scaled as the script scales them (to_pixels): the same values in another memory layout can tip a
    # near-tie between two codes
    pixels = to_pixels([box.apply(frame)])
    objects = [model.layout_objects(layout)]  # what a decoder map reads, as for an imagined scene
    tokens = vq.encode_tokens(model.model.model.vqmodel, pixels)
    decoded = decode_image(model.model, tokens, objects)[0].numpy()
    assert np.array_equal(rows["vq"], box.crop(decoded))
    assert not np.array_equal(rows["vq"], rows["resized"])
    vqmodel = model.model.model.vqmodel  # the latent row: the autoencoder without the codebook
    raw = vq.encode_latent(vqmodel, pixels.to(model.dtype))
    latent = vq.decode_latent(vqmodel, raw, *label_boxes(model.model, objects))[0].permute(1, 2, 0)
    expected = ((latent.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    assert np.abs(rows["latent"].astype(int) - box.crop(expected)).max() <= 1
    assert np.abs(rows["latent"].astype(int) - rows["vq"]).max() > 8


def test_confusions_count_kinds_taken_for_others_and_misses() -> None:
    from echogen_ros.evaluation.detector import Found

    truth = [("cup", (0, 0, 10, 10)), ("block", (20, 0, 30, 10)), ("plate", (40, 0, 60, 10)), ("cup", (0, 20, 9, 30))]
    found = [
        Found("ball", "red", (0, 0, 10, 10), 0.9),  # the cup, taken for a ball
        Found("block", "red", (20, 0, 30, 10), 0.9),  # right
        Found("plate", "red", (40, 0, 47, 10), 0.9),  # IoU 0.35: missed
        Found("ball", "red", (0, 19, 9, 30), 0.9),  # the second cup, a ball too
    ]
    counts = vq_ceiling.confusions(truth, found)
    assert counts == {"cup → ball": 2, "plate → missed": 1}


def test_report_grades_renders_and_round_trips(model: EchoGen, world_export: Path) -> None:
    report = vq_ceiling.measure(model, world_export, scenes=3)
    assert report["scenes"] == 3 and report["image_size"] == model.image_size
    assert report["frame"]["ap50"] >= 0.9  # the detector on renders (validated to >= 0.95 AP50)
    assert report["vq"]["ap50"] < report["frame"]["ap50"]  # the shipped tokenizer loses shapes
    assert report["frame"]["ap50_any_category"] >= 0.9 and 0 <= report["vq"]["ap50_any_category"] <= 1
    assert sum(report["vq"]["confusions"].values()) > sum(report["frame"]["confusions"].values())
    data = load_export(world_export)  # the vq row's cycle by hand
    names = {c["id"]: c["name"] for c in data["categories"]}
    ious, squared = [], []
    for info in data["images"][:3]:
        objects = [a for a in data["annotations"] if a["image_id"] == info["id"]][: model.max_objects]
        frame = cv2.cvtColor(cv2.imread(str(world_export / "images" / info["file_name"])), cv2.COLOR_BGR2RGB)
        labels = [f"{a['attributes']['colour']} {names[a['category_id']]}" for a in objects]
        boxes = [(x, y, x + w, y + h) for x, y, w, h in (a["bbox"] for a in objects)]
        layout = Layout(info["width"], info["height"], tuple(LayoutObject(t, b) for t, b in zip(labels, boxes)))
        pictures = vq_ceiling.versions(model, frame, layout)
        found = model.ground_layout(pictures["vq"], layout)  # as the cycle check
        ious += [box_iou(b, d.box) for b, d in zip(boxes, found)]
        squared.append(np.mean((pictures["vq"].astype(float) - pictures["resized"].astype(float)) ** 2))
    assert report["objects"] == len(ious)
    assert report["vq"]["cycle_iou"] == pytest.approx(float(np.mean(ious)))
    assert report["vq"]["cycle_failure_rate"] == pytest.approx(float(np.mean(np.array(ious) < FAILURE_IOU)))
    # the reconstruction's PSNR against what the VQ-VAE was given, for the decoded rows only
    assert report["vq"]["psnr_db"] == pytest.approx(10 * np.log10(255**2 / np.mean(squared)))
    assert 10 < report["vq"]["psnr_db"] < report["latent"]["psnr_db"] + 1 and "psnr_db" not in report["resized"]
    assert psnr(0.0, peak=255.0) == float("inf") and psnr(255.0**2, peak=255.0) == 0.0


def test_bad_arguments_exit_non_zero(world_export: Path, tmp_path: Path, capsys) -> None:
    main = vq_ceiling.main
    assert main([str(tmp_path / "missing"), "--data", str(world_export)]) == 2
    assert main([str(DEFAULT_MODEL_DIR), "--data", str(tmp_path)]) == 2
    assert "annotations.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([str(DEFAULT_MODEL_DIR), "--data", str(world_export), "--scenes", "0"])
    assert exit_info.value.code == 2


def test_crops_show_the_objects_the_tokenizer_loses(model: EchoGen, world_export: Path, tmp_path) -> None:
    crops: list = []
    report = vq_ceiling.measure(model, world_export, scenes=3, crops=crops)
    lost = sum(report["vq"]["confusions"].values())
    assert len(crops) == min(lost, vq_ceiling.MAX_CROPS) > 0
    side = vq_ceiling.CROP_SIDE
    rows = len(vq_ceiling.ROWS) + ("map_only" in report)  # a decoder map's control row is shown too
    assert all(c.shape == (side, side * rows, 3) and c.dtype == np.uint8 for c in crops)
    out = tmp_path / "crops.png"
    assert (
        vq_ceiling.main([str(DEFAULT_MODEL_DIR), "--data", str(world_export), "--scenes", "3", "--crops", str(out)])
        == 0
    )
    assert cv2.imread(str(out)).shape == (side * len(crops), side * rows, 3)
    with pytest.raises(SystemExit):
        vq_ceiling.main([str(DEFAULT_MODEL_DIR), "--data", str(world_export), "--crops", str(tmp_path / "crops.txt")])


def test_a_strip_is_square_around_the_box_even_at_the_frame_edge() -> None:
    frame = np.zeros((60, 80, 3), np.uint8)
    frame[0:10, 0:20] = 255  # a wide white object in the corner
    (tile,) = np.split(vq_ceiling.strip({"frame": frame}, (0, 0, 20, 10), side=48), 1, axis=1)
    assert tile.shape == (48, 48, 3)
    white = np.argwhere(tile[..., 0] == 255)
    assert white[:, 1].min() > 0 and white[:, 1].max() < 47  # the object whole, with a margin
    rows, cols = np.ptp(white[:, 0]) + 1, np.ptp(white[:, 1]) + 1
    assert 0.35 < rows / cols < 0.65  # its 1:2 shape kept, not stretched to a square


def test_a_decoder_map_gets_the_map_only_control(mapped_model, world_export: Path) -> None:
    """For a model whose decoder reads the layout, the `map_only` row draws another scene's codes with this
    scene's layout (what the decoder draws from the layout alone); models without one have no such row."""
    model = mapped_model()
    frame, layout = _scene(world_export, 0)
    other, _ = _scene(world_export, 1)
    rows = vq_ceiling.versions(model, frame, layout, other)
    box = Letterbox(other.shape[1], other.shape[0], model.image_size)
    pixels = torch.from_numpy(box.apply(other).astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    codes = vq.encode_tokens(model.model.model.vqmodel, pixels)
    expected = decode_image(model.model, codes, [model.layout_objects(layout)])[0].numpy()
    mine = Letterbox(frame.shape[1], frame.shape[0], model.image_size)
    assert np.abs(rows["map_only"].astype(int) - mine.crop(expected)).max() <= 1  # to_pixels: a rounding step
    assert not np.array_equal(rows["map_only"], rows["vq"])
    report = vq_ceiling.measure(model, world_export, scenes=2)
    assert {"ap50", "ap50_any_category", "cycle_iou", "confusions"} <= set(report["map_only"])
    assert "map_only" not in vq_ceiling.measure(EchoGen.create("tiny", seed=0), world_export, scenes=2)
