"""experiments.refine_sweep: window 0 is the chosen bins' centres (decoding before refinement), the
default window is what `echogen eval` measures, and bad arguments exit non-zero."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import torch
from experiments import refine_sweep

from echogen_ros.evaluation.run import evaluate, load_export
from echogen_ros.model.echogen import DEFAULT_MODEL_DIR, EchoGen
from echogen_ros.model.generation import REFINE_BINS
from echogen_ros.model.layout import box_iou
from echogen_ros.model.metrics import grounding_accuracy
from echogen_ros.world.dataset import has_target


@pytest.fixture(scope="module")
def model() -> EchoGen:
    return EchoGen.load()  # the embedded model: boxes that overlap their targets, so the windows differ


def test_windows_span_bin_centres_to_what_eval_measures(model: EchoGen, world_export: Path) -> None:
    rows = refine_sweep.sweep(model, world_export, [0, REFINE_BINS])
    assert [r["window"] for r in rows] == [0, REFINE_BINS] and rows[0]["count"] == rows[1]["count"] > 10
    measured = evaluate(model, world_export, imagine_limit=1)["grounding"]
    assert {k: rows[1][k] for k in ("acc@0.5", "acc@0.75", "acc@0.9", "macc", "count")} == {
        k: measured[k] for k in ("acc@0.5", "acc@0.75", "acc@0.9", "macc", "count")
    }
    data = load_export(world_export)  # window 0 by hand: the bin centres of the greedy tokens
    boxes, ious = {a["id"]: a["bbox"] for a in data["annotations"]}, []
    for info in data["images"]:
        image = cv2.cvtColor(cv2.imread(str(world_export / "images" / info["file_name"])), cv2.COLOR_BGR2RGB)
        sentences = [
            (r["ann_id"], s["sent"]) for r in data["refs"] if r["image_id"] == info["id"] and has_target(r)
            for s in r["sentences"]
        ]  # fmt: skip
        if not sentences:
            continue
        array, ids, mask, letterbox = model.grounding_inputs(image, [t for _, t in sentences])
        tokens, *_ = model.decode_grounding(array, ids, mask)
        for (ann, text), row in zip(sentences, tokens.tolist()):
            x, y, w, h = boxes[ann]
            box = model.detection(letterbox, model.scheme.box_from_tokens(row), 1.0, text).box
            ious.append(box_iou((x, y, x + w, y + h), box))
    assert rows[0] == {"window": 0, **grounding_accuracy(ious)}


def test_bad_arguments_exit_non_zero(world_export: Path, tmp_path: Path, capsys) -> None:
    main = refine_sweep.main
    assert main([str(tmp_path), str(world_export), "--windows", "-1"]) == 2
    assert main([str(tmp_path / "missing"), str(world_export)]) == 1
    assert main([str(DEFAULT_MODEL_DIR), str(tmp_path)]) == 1
    assert "annotations.json" in capsys.readouterr().err
    # a failed run leaves the process as it found it (tests run in one)
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
