"""`echogen eval`: the classical detector is validated on real renders, and the metrics reach 1 for a
perfect model (ground truth resolution + the world's renderer) and drop for a worse one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from echogen_ros.cli import main
from echogen_ros.evaluation import cycle_check
from echogen_ros.evaluation.cycle_check import failure_detection, scene_recall
from echogen_ros.evaluation.detector import detect
from echogen_ros.evaluation.fid import FID, load_inception
from echogen_ros.evaluation.grounding_errors import composition, outcome, outcome_rates
from echogen_ros.evaluation.layout_ap import layout_ap
from echogen_ros.evaluation.run import evaluate, jitter_box
from echogen_ros.model.echogen import CycleResult
from echogen_ros.model.layout import Detection, Layout, LayoutObject, box_iou
from echogen_ros.model.metrics import grounding_accuracy
from echogen_ros.planning.phrases import KnownObject, resolve
from echogen_ros.world import catalog
from echogen_ros.world.dataset import export, has_target, world_sample
from echogen_ros.world.render import render
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

    def imagine(self, layout: Layout, seed: int | None = None, decoder_map: bool = False) -> np.ndarray:
        objs = tuple(
            SceneObject(o.label.split()[1], o.label.split()[0], "small", o.box, (0, 0, 0)) for o in layout.objects
        )
        return render(Scene(objs, world_sample(0, 0).scene.style), layout.width, layout.height)

    def image_codes(self, image: np.ndarray) -> np.ndarray:  # a perfect tokenizer: the picture itself
        return image

    def draw(self, codes: np.ndarray, layout: Layout, decoder_map: bool = False) -> np.ndarray:
        return cv2.resize(codes, (layout.width, layout.height), interpolation=cv2.INTER_NEAREST)

    def check_cycle(self, image: np.ndarray, layout: Layout) -> CycleResult:
        """Each object grounded back on the region the classical detector finds there (its best IoU): right
        wherever the object is drawn."""
        boxes = [f.box for f in detect(image)] or [(0.0, 0.0, 1.0, 1.0)]
        found = [max(boxes, key=lambda b, o=o: box_iou(o.box, b)) for o in layout.objects]
        ious = [box_iou(o.box, b) for o, b in zip(layout.objects, found)]
        grounded = tuple(LayoutObject(o.label, b) for o, b in zip(layout.objects, found))
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
        png = cv2.imread(str(out / "images" / f"{index + 1:06d}.png"))
        scene_of[cv2.cvtColor(png, cv2.COLOR_BGR2RGB).tobytes()[:4096]] = objects
    report = evaluate(PerfectModel(scene_of), out)
    assert report["grounding"]["acc@0.9"] == 1.0 and report["grounding"]["macc"] == 1.0
    assert set(report["grounding"]["by_type"]) <= set(catalog.EXPRESSION_TYPES)
    assert report["grounding"]["outcomes"]["correct"] == 1.0
    assert all(g["outcomes"]["correct"] == 1.0 for g in report["grounding"]["by_composition"].values())
    assert report["cycle"]["mean_iou"] >= 0.95 and report["cycle"]["failure_rate"] == 0.0  # the detector's boxes
    assert report["layout_to_image"]["ap50"] >= 0.9
    assert report["layout_to_image"]["any_category"]["ap50"] >= 0.9
    controls = report["controls"]  # the same grades of pictures that are not the generator's
    assert controls["ceiling"]["layout_to_image"]["ap50"] >= 0.9 and controls["ceiling"]["cycle"]["mean_iou"] >= 0.9
    assert (
        controls["empty_table"]["layout_to_image"]["ap50"] == 0 and controls["empty_table"]["cycle"]["mean_iou"] < 0.1
    )
    assert controls["other_scene"]["cycle"]["mean_iou"] < 0.5
    assert controls["painted"]["layout_to_image"]["ap50"] <= 0.2  # flat shapes in the boxes: no kind's shape
    check = report["cycle_check"]  # nothing drawn wrong, nothing failed; every empty table failed
    assert check["drawn_wrong"] == check["failed"] == 0 and check["controls_failed"]["empty_table"] == 1.0


def test_eval_cli_json_and_bad_data(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    export(data, seed=1, count=2, split="heldout", width=320, height=240)
    assert main(["eval", "--data", str(data), "--model", str(tiny_model_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"grounding", "layout_to_image", "cycle", "fid", "controls", "cycle_check"} <= set(report)
    assert set(report["controls"]) == {"ceiling", "empty_table", "other_scene", "painted"}
    assert all(c["cycle"]["objects"] == report["cycle"]["objects"] for c in report["controls"].values())
    assert report["cycle"]["decoder_map"] is False and report["cycle_check"]["scenes"] == 2
    annotations = json.loads((data / "annotations.json").read_text())
    sentences = [(has_target(r), len(r["sentences"])) for r in annotations["refs"]]
    assert report["grounding"]["count"] == sum(n for present, n in sentences if present)
    assert report["grounding"]["no_target_skipped"] == sum(n for present, n in sentences if not present) > 0
    assert report["cycle"]["objects"] == len(annotations["annotations"])
    compositions = report["grounding"]["by_composition"]
    assert set(compositions) <= {"heldout_pair", "seen_pair"}
    assert sum(g["count"] for g in compositions.values()) == report["grounding"]["count"]
    pairs = report["grounding"]["by_heldout_pair"]  # "blue cup": the held-out pairs referred to, by label
    assert sum(g["count"] for g in pairs.values()) == compositions.get("heldout_pair", {"count": 0})["count"]
    assert all(catalog.is_heldout_pair(*label.split()) for label in pairs)
    assert sum(report["grounding"]["outcomes"].values()) == pytest.approx(1.0)
    assert main(["eval", "--data", str(tmp_path / "nothing"), "--model", str(tiny_model_dir)]) == 2
    assert "echogen world" in capsys.readouterr().err


def test_eval_cli_on_scenes_drawn_in_memory(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    """--world draws what `echogen world` would export (the same report); --scale-band reports grounding by band;
    --fresh-heldout is the documented fresh set."""
    export(tmp_path / "data", seed=4, count=2, split="heldout")
    common = ["--model", str(tiny_model_dir), "--json", "--grounding-only"]
    assert main(["eval", "--data", str(tmp_path / "data"), *common]) == 0
    from_export = json.loads(capsys.readouterr().out)
    assert main(["eval", "--world", "heldout", "--world-seed", "4", "--count", "2", *common]) == 0
    drawn = json.loads(capsys.readouterr().out)
    assert drawn["scenes"] == {"split": "heldout", "seed": 4, "count": 2, "scale_range": [1.0, 1.0], "border_cut": 0.0}
    assert drawn["grounding"] == from_export["grounding"] and "cycle" not in drawn
    bands = ["--scale-band", "0.5-0.7", "--scale-band", "1.3-1.6"]
    assert main(["eval", "--world", "test", "--count", "2", *common, *bands]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["scale_bands"]) == ["0.5-0.7", "1.3-1.6"] and report["scenes"]["seed"] == 7
    assert all(
        band["count"] > 0 and 0 <= band["macc"] <= band["acc@0.5"] <= 1 for band in report["scale_bands"].values()
    )
    assert main(["eval", "--fresh-heldout", "--limit", "1", *common]) == 0
    assert json.loads(capsys.readouterr().out)["scenes"] == {
        "split": "heldout", "seed": 20261205, "count": 200, "scale_range": [1.0, 1.0], "border_cut": 0.0
    }  # fmt: skip
    for bad, says in (
        (["--data", str(tmp_path / "data"), "--scale-band", "0.5-0.7"], "--world"),
        (["--fresh-heldout", "--count", "3"], "fresh held-out"),
        (["--world", "test", "--scale-band", "0.1-0.7"], "scale_range"),
        (["--world", "test", "--scale-band", "half"], "LO-HI"),
        (["--world", "test", "--data", str(tmp_path / "data")], "not allowed"),
    ):
        assert main(["eval", *bad, "--model", str(tiny_model_dir)]) == 2
        assert says in capsys.readouterr().err


@pytest.mark.parametrize("layout", [[], [("cup", (0, 0, 10, 10))]])
def test_layout_ap_edge_cases(layout) -> None:
    if not layout:
        with pytest.raises(ValueError, match="no layout objects"):
            layout_ap([layout], [[]])
    else:
        assert layout_ap([layout], [[]])["ap50"] == 0.0
        assert layout_ap([layout], [[("cup", (0, 0, 10, 10), 0.9)]])["ap50"] == pytest.approx(1.0)


def test_layout_ap_by_category_and_whatever_the_category() -> None:
    layouts = [[("cup", (0, 0, 10, 10)), ("plate", (20, 20, 40, 30))]]
    found = [[("ball", (0, 0, 10, 10), 0.9), ("plate", (20, 20, 40, 30), 0.8)]]  # the cup drawn as a ball
    assert layout_ap(layouts, found)["ap50"] == pytest.approx(0.5)  # COCO's mean over the two categories
    assert layout_ap(layouts, found, by_category=False)["ap50"] == pytest.approx(1.0)
    shifted = [[("cup", (10, 10, 20, 20), 0.9), ("plate", (40, 30, 60, 40), 0.8)]]  # right kinds, wrong places
    assert layout_ap(layouts, shifted, by_category=False)["ap50"] == 0.0


class _PoolFeatures(torch.nn.Module):
    """A TorchScript stand-in for an Inception network: 2×2 mean colours (12 features)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(x / 255.0, 2).flatten(1)


def test_fid_through_torchmetrics_on_a_torchscript_network(tmp_path: Path) -> None:
    path = tmp_path / "features.pt"
    torch.jit.script(_PoolFeatures()).save(str(path))
    features = load_inception(path)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(16)]
    same, darker = FID(features), FID(features)
    for image in images:
        same.update(image, real=True)
        same.update(image, real=False)
        darker.update(image, real=True)
        darker.update(image // 2, real=False)
    assert abs(same.compute()) < 1e-6
    assert darker.compute() > 0.1
    with pytest.raises(ValueError, match="at least 2"):
        FID(features).compute()


def test_eval_cli_fid_noise_and_bad_inception(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    export(data, seed=2, count=3, split="heldout", width=160, height=120)
    net = tmp_path / "features.pt"
    torch.jit.script(_PoolFeatures()).save(str(net))
    args = ["eval", "--data", str(data), "--model", str(tiny_model_dir), "--json", "--inception", str(net)]
    assert main([*args, "--noise", "0.2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert isinstance(report["fid"], float) and report["fid"] >= 0
    assert report["cycle"]["layout_noise"] == 0.2
    (tmp_path / "bad.pt").write_bytes(b"not a network")
    assert main([*args[:-1], str(tmp_path / "bad.pt")]) == 2
    assert "TorchScript" in capsys.readouterr().err
    assert main([*args[:-2], "--noise", "-1"]) == 2


def test_jittered_boxes_stay_inside_and_move_with_the_noise() -> None:
    rng = np.random.default_rng(0)
    box = (100.0, 100.0, 140.0, 130.0)
    assert jitter_box(box, 0.0, 640, 480, rng) == box
    moved = [jitter_box(box, 0.3, 640, 480, rng) for _ in range(200)]
    assert all(0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480 and x2 - x1 >= 2 for x1, y1, x2, y2 in moved)
    assert 0.3 < np.mean([box_iou(box, m) for m in moved]) < 0.9
    edge = [jitter_box((630.0, 470.0, 640.0, 480.0), 2.0, 640, 480, rng) for _ in range(100)]
    assert all(0 <= b[0] < b[2] <= 640 and 0 <= b[1] < b[3] <= 480 for b in edge)


def test_grounding_metrics_on_hand_made_cases() -> None:
    perfect = grounding_accuracy([1.0] * 4)
    assert perfect["acc@0.5"] == perfect["acc@0.9"] == perfect["macc"] == 1.0
    box = (100.0, 100.0, 200.0, 200.0)
    shifted = box_iou(box, (110.0, 100.0, 210.0, 200.0))  # 10 px of a 100 px box: IoU 0.818
    report = grounding_accuracy([1.0, shifted, 0.0, 0.0])  # two perfect/shifted, two missing
    assert report["acc@0.5"] == 0.5 and report["acc@0.75"] == 0.5 and report["acc@0.9"] == 0.25
    assert report["macc"] == pytest.approx((10 + 7) / 40)  # perfect passes all 10 thresholds, shifted 0.5…0.8


def test_grounding_outcomes_on_hand_made_cases() -> None:
    """A box on the referred object, on another, loosely on the referred one, and on the empty table."""
    objects = {1: (0.0, 0.0, 100.0, 100.0), 2: (200.0, 0.0, 300.0, 100.0)}
    assert outcome((5.0, 0.0, 105.0, 100.0), 1, objects) == "correct"
    assert outcome((200.0, 0.0, 300.0, 100.0), 1, objects) == "another_object"
    assert outcome((60.0, 0.0, 160.0, 100.0), 1, objects) == "loose"  # IoU 0.25 with the target, none with 2
    assert outcome((0.0, 300.0, 100.0, 400.0), 1, objects) == "elsewhere"
    assert outcome((140.0, 0.0, 240.0, 100.0), 1, objects) == "elsewhere"  # nearer the other object, on neither
    rates = outcome_rates(["correct", "correct", "loose", "another_object"])
    assert rates == {"correct": 0.5, "another_object": 0.25, "loose": 0.25, "elsewhere": 0.0}
    assert outcome_rates([])["correct"] == 0.0
    with pytest.raises(ValueError, match="not among"):
        outcome((0.0, 0.0, 1.0, 1.0), 3, objects)
    with pytest.raises(ValueError, match="unknown"):
        outcome_rates(["right"])
    assert composition({"attributes": {"colour": "blue"}}, "cup") == "heldout_pair"
    assert composition({"attributes": {"colour": "red"}}, "cup") == "seen_pair"
    assert composition({}, "cup") == "seen_pair"


def test_scene_recall_and_the_cycle_check_as_a_failure_detector_on_hand_made_cases() -> None:
    truth = [("cup", (0, 0, 10, 10)), ("cup", (20, 0, 30, 10)), ("ball", (40, 0, 50, 10))]
    assert scene_recall(truth, []) == 0 and scene_recall([], []) == 1
    one_box_twice = [("cup", (0, 0, 10, 10), 0.9), ("cup", (0, 0, 10, 10), 0.8)]  # a detection counts once
    assert scene_recall(truth, one_box_twice) == pytest.approx(1 / 3)
    wrong_kind = [("ball", (20, 0, 30, 10), 0.9), ("ball", (40, 0, 50, 10), 0.5)]
    assert scene_recall(truth, wrong_kind) == pytest.approx(1 / 3)
    # (cycle mean IoU, detector recall): two drawn wrong (recall < 0.5), the check fails three at 0.6
    scenes = [(0.2, 0.0), (0.5, 1.0), (0.55, 0.3), (0.9, 1.0), (0.95, 0.6)]
    graded = failure_detection(scenes, 0.6)
    assert (graded["drawn_wrong"], graded["failed"]) == (2, 3)
    assert graded["precision"] == pytest.approx(2 / 3) and graded["recall"] == 1.0
    assert failure_detection(scenes, 0.1)["precision"] is None and failure_detection(scenes, 0.1)["recall"] == 0
    swept = cycle_check.report(scenes, 0.6)
    assert swept["sweep"][0]["threshold"] == 0.4 and len(swept["per_scene"]) == 5
    assert [s["recall"] for s in swept["sweep"]] == sorted(s["recall"] for s in swept["sweep"])  # rises with it
