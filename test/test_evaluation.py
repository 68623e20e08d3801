"""`echogen eval`: the classical detector is validated on real renders, and the metrics reach 1 for a
perfect model (ground truth resolution + the world's renderer) and drop for a worse one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from echogen_ros.cli import main
from echogen_ros.evaluation.detector import detect
from echogen_ros.evaluation.layout_ap import layout_ap
from echogen_ros.evaluation.run import evaluate
from echogen_ros.model.echogen import CycleResult
from echogen_ros.model.layout import Detection, Layout, LayoutObject, box_iou
from echogen_ros.planning.phrases import KnownObject, resolve
from echogen_ros.world import catalog
from echogen_ros.world.dataset import export, world_sample
from echogen_ros.world.render import pixel_box, render
from echogen_ros.world.scene import Scene, SceneObject


def test_detector_reaches_ap50_095_on_real_renders() -> None:
    layouts, found = [], []
    for index in range(120):
        sample = world_sample(11, index, "test")
        layouts.append([(o.category, b) for o, b in zip(sample.scene.objects, sample.boxes())])
        found.append([(f.category, f.box, f.score) for f in detect(sample.image())])
    assert layout_ap(layouts, found)["ap50"] >= 0.95
    shifted = [[(c, (b[0] + 30, b[1] + 30, b[2] + 30, b[3] + 30), s) for c, b, s in f] for f in found]
    assert layout_ap(layouts, shifted)["ap50"] < 0.5  # the measure can fail


@dataclass
class PerfectModel:
    """Grounds by resolving phrases against the export's ground truth; imagines by rendering the layout
    with the world's renderer. Everything it returns is right, so every metric should be (close to) 1."""

    scene_of: dict
    max_objects: int = 12

    def ground_many(self, image: np.ndarray, expressions: list[str]) -> list[Detection]:
        objects = self.scene_of[image.tobytes()[:4096]]
        out = []
        for text in expressions:
            (index,) = resolve(text, objects, float(image.shape[0]))
            out.append(Detection(objects[index].box, 1.0, text))
        return out

    def cycle(self, layout: Layout, seed: int | None = None) -> CycleResult:
        objs = tuple(
            SceneObject(o.label.split()[1], o.label.split()[0], "small", o.box, (0, 0, 0)) for o in layout.objects
        )
        scene = Scene(objs, world_sample(0, 0).scene.style)
        image = render(scene, layout.width, layout.height)
        grounded = tuple(
            LayoutObject(o.label, pixel_box(obj, layout.width, layout.height)) for o, obj in zip(layout.objects, objs)
        )
        ious = [box_iou(a.box, b.box) for a, b in zip(layout.objects, grounded)]
        return CycleResult(image, Layout(layout.width, layout.height, grounded), ious, float(np.mean(ious)))


def test_a_perfect_model_scores_one(tmp_path: Path) -> None:
    out = tmp_path / "data"
    export(out, seed=5, count=6, split="test")
    scene_of = {}
    for index in range(6):
        sample = world_sample(5, index, "test")
        objects = [
            KnownObject(o.category, tuple(map(float, b)), o.colour, o.size)
            for o, b in zip(sample.scene.objects, sample.boxes())
        ]
        import cv2

        png = cv2.imread(str(out / "images" / f"{index + 1:06d}.png"))
        scene_of[cv2.cvtColor(png, cv2.COLOR_BGR2RGB).tobytes()[:4096]] = objects
    report = evaluate(PerfectModel(scene_of), out)
    assert report["grounding"]["acc@0.9"] == 1.0 and report["grounding"]["macc"] == 1.0
    assert set(report["grounding"]["by_type"]) <= set(catalog.EXPRESSION_TYPES)
    assert report["cycle"]["mean_iou"] == 1.0 and report["cycle"]["failure_rate"] == 0.0
    assert report["layout_to_image"]["ap50"] >= 0.9


def test_eval_cli_json_and_bad_data(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    export(data, seed=1, count=2, split="heldout", width=320, height=240)
    assert main(["eval", "--data", str(data), "--model", str(tiny_model_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"grounding", "layout_to_image", "cycle", "fid"} <= set(report)
    annotations = json.loads((data / "annotations.json").read_text())
    assert report["grounding"]["count"] == sum(len(r["sentences"]) for r in annotations["refs"])
    assert report["cycle"]["objects"] == len(annotations["annotations"])
    assert main(["eval", "--data", str(tmp_path / "nothing"), "--model", str(tiny_model_dir)]) == 2
    assert "echogen world" in capsys.readouterr().err


@pytest.mark.parametrize("layout", [[], [("cup", (0, 0, 10, 10))]])
def test_layout_ap_edge_cases(layout) -> None:
    if not layout:
        with pytest.raises(ValueError, match="no layout objects"):
            layout_ap([layout], [[]])
    else:
        assert layout_ap([layout], [[]])["ap50"] == 0.0
        assert layout_ap([layout], [[("cup", (0, 0, 10, 10), 0.9)]])["ap50"] == pytest.approx(1.0)
