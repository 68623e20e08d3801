"""`echogen ground` / `imagine` / `model-init` / `bench`: JSON contracts and the bad-input table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from bombs import png_claiming

from echogen_ros.cli import main
from echogen_ros.planning.imagination import CYCLE_THRESHOLD
from echogen_ros.world.dataset import world_sample


@pytest.fixture(scope="module")
def image_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "scene.png"
    cv2.imwrite(str(path), cv2.cvtColor(world_sample(0, 2, "test").image(), cv2.COLOR_RGB2BGR))
    return path


def _layout(tmp_path: Path, data) -> Path:
    path = tmp_path / "layout.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


GOOD_LAYOUT = {
    "caption": "a table",
    "width": 320,
    "height": 240,
    "objects": [{"label": "red cup", "box": [10, 20, 90, 100]}],
}


FINDING = {"phrase", "found", "confidence", "detections", "unknown_words", "nearest", "out_of_domain", "calibrated",
           "reason", "latency_ms"}  # fmt: skip


def test_ground_prints_the_json_contract(tiny_model_dir: Path, image_path: Path, capsys) -> None:
    """`ground --json` is EchoGen.find's Finding: found, the confidence, boxes at or above the threshold only."""
    args = ["ground", "--image", str(image_path), "--expr", "the red cup", "--model", str(tiny_model_dir), "--json"]
    assert main([*args, "--top-k", "2", "--threshold", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == FINDING and result["phrase"] == "the red cup" and result["reason"] == ""
    assert result["found"] and len(result["detections"]) == 2 and result["unknown_words"] == []
    assert not result["calibrated"] and not result["out_of_domain"] and result["latency_ms"] > 0  # no calibration
    det = result["detections"][0]
    assert set(det) == {"box", "score", "label"} and len(det["box"]) == 4 and det["label"] == "the red cup"
    assert det["score"] == result["confidence"] and 0 <= det["score"] <= 1
    assert main([*args, "--threshold", "1"]) == 0  # a random model is never that sure: no box below it
    result = json.loads(capsys.readouterr().out)
    assert not result["found"] and result["detections"] == [] and result["reason"] and result["confidence"] < 1
    assert main(args[:-1] + ["--threshold", "1"]) == 0
    assert "not found: " in capsys.readouterr().out
    for bad in ("1.5", "-0.1", "nan", "high"):
        assert main([*args, "--threshold", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--threshold" in err, err


def test_ground_on_a_category_the_scene_lacks_finds_nothing_at_a_threshold_near_1(image_path: Path, capsys) -> None:
    """The embedded model, asked for a category the frame does not hold, at a threshold near 1: not found, a
    reason, no box (whether the model is calibrated or not)."""
    sample = world_sample(0, 2, "test")
    lacking = next(c for c in ("ball", "banana", "bottle", "box", "block", "plate", "bowl", "cup")
                   if all(o.category != c for o in sample.scene.objects))  # fmt: skip
    args = ["ground", "--image", str(image_path), "--expr", f"the {lacking}", "--threshold", "0.99", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert not result["found"] and result["detections"] == [] and result["reason"], result
    assert result["unknown_words"] == [] and result["confidence"] < 0.99


@pytest.mark.parametrize(
    ("expression", "found", "unknown", "nearest", "label"),
    [
        ("the scissors", False, ["scissors"], {}, None),
        ("LA TAZA ROJA", False, ["la", "taza", "roja"], {}, None),
        ("the red bottel", False, ["bottel"], {"bottel": "bottle"}, None),
        ("the red mug", True, [], {}, "the red cup"),  # a synonym: grounded as the vocabulary says it
        ("the mug left of the zorp", True, ["zorp"], {}, "the cup left of the zorp"),  # the head noun is known
    ],
)
def test_ground_says_which_words_it_did_not_understand(
    tiny_model_dir: Path, image_path: Path, capsys, expression, found, unknown, nearest, label
) -> None:
    """A phrase that names no known object is not grounded (the model would put it on something else);
    every word outside the vocabulary is reported, with the nearest known one where one is close."""
    args = ["ground", "--image", str(image_path), "--expr", expression, "--model", str(tiny_model_dir),
            "--threshold", "0", "--json"]  # fmt: skip
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["found"] is found and result["unknown_words"] == unknown and result["nearest"] == nearest
    assert [d["label"] for d in result["detections"]] == ([label] if found else [])
    assert ("names no object I know" in result["reason"]) is not found
    assert main(args[:-1]) == 0
    said = capsys.readouterr().out
    assert ("did not understand" in said) is bool(unknown)


def test_imagine_writes_an_image_of_the_layout_size(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out" / "imagined.png"
    layout = _layout(tmp_path, GOOD_LAYOUT)
    assert (
        main(["imagine", "--layout", str(layout), "--out", str(out), "--model", str(tiny_model_dir), "--seed", "1"])
        == 0
    )
    assert cv2.imread(str(out)).shape == (240, 320, 3)
    assert json.loads(capsys.readouterr().out)["out"] == str(out)


def test_imagine_draws_with_the_decoder_map_only_when_asked(mapped_model, tiny_model_dir, tmp_path, capsys) -> None:
    model_dir = mapped_model().save(tmp_path / "mapped")
    base = ["imagine", "--layout", str(_layout(tmp_path, GOOD_LAYOUT)), "--seed", "1", "--model"]
    pictures = {}
    for extra in ([], ["--decoder-map"]):
        out = tmp_path / f"imagined{len(extra)}.png"
        assert main([*base, str(model_dir), "--out", str(out), *extra]) == 0
        assert json.loads(capsys.readouterr().out)["decoder_map"] is bool(extra)
        pictures[bool(extra)] = cv2.imread(str(out))
    assert not np.array_equal(pictures[False], pictures[True])
    assert main([*base, str(tiny_model_dir), "--out", str(tmp_path / "x.png"), "--decoder-map"]) == 2
    assert "no layout-reading decoder" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def _bad_layouts():
    def with_objects(objects, **extra):
        return {**GOOD_LAYOUT, "objects": objects, **extra}

    return [
        (with_objects([{"label": "cup", "box": [10, 20, 400, 100]}]), "outside"),
        (with_objects([{"label": "cup", "box": [50, 20, 40, 100]}]), "degenerate"),
        ('{"width": 320, "height": 240, "objects": [{"label": "cup", "box": [NaN, 1, 5, 5]}]}', "finite"),
        (with_objects([{"label": "cup", "box": [1, 1, 5, 5]}] * 13), "at most 12"),
        (with_objects([{"label": "cup", "box": [1, 1, 5]}]), "four numbers"),
        (with_objects([{"label": "", "box": [1, 1, 5, 5]}]), "empty label"),
        ({"width": 320, "objects": []}, "lacks height"),
        ("{not json", "not valid JSON"),
        ([1, 2], "must be an object"),
        # 90 bytes that once asked for a 40000 x 40000 image (5 GB, then MemoryError)
        ({"width": 40000, "height": 40000, "objects": [{"label": "cup", "box": [1, 1, 5, 5]}]}, "over 4096 a side"),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, "nests too deeply"),  # once a RecursionError traceback
        (" " * (2 << 20) + "{}", "over 1048576 bytes"),
    ]


@pytest.mark.parametrize(("layout", "message"), _bad_layouts())
def test_imagine_bad_layouts_exit_2(tiny_model_dir: Path, tmp_path: Path, capsys, layout, message) -> None:
    out = tmp_path / "x.png"
    path = _layout(tmp_path, layout)
    assert main(["imagine", "--layout", str(path), "--out", str(out), "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_outputs_are_whole_or_absent_and_foreign_directories_are_kept(
    tiny_model_dir: Path, image_path: Path, tmp_path: Path, capsys
) -> None:
    """plan refuses a directory it did not write and replaces its own; imagine writes its PNG in one rename;
    an output under a regular file is one line, not an OSError traceback."""
    base = ["--image", str(image_path), "--model", str(tiny_model_dir), "--min-score", "0"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    plan = ["plan", *base, "--instruction", "put the red cup above the plate", "--seed", "2"]
    assert main([*plan, "--out", str(foreign)]) == 2
    assert "echogen did not write it" in capsys.readouterr().err and (foreign / "notes.txt").read_text() == "keep"
    assert main([*plan, "--out", str(tmp_path / "p")]) == 0
    assert main([*plan, "--out", str(tmp_path / "p")]) == 0  # its own earlier plan: replaced
    capsys.readouterr()
    layout = _layout(tmp_path, GOOD_LAYOUT)
    imagine = ["imagine", "--layout", str(layout), "--model", str(tiny_model_dir)]
    (tmp_path / "file").write_text("a file, not a folder")
    assert main([*imagine, "--out", str(tmp_path / "file" / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err, err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no partial left


def test_ground_bad_inputs_exit_2(tiny_model_dir: Path, image_path: Path, tmp_path: Path, capsys) -> None:
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    broken_model = tmp_path / "model"
    broken_model.mkdir()
    cases = [
        (["--image", str(tmp_path / "missing.png"), "--expr", "the cup"], "does not exist"),
        (["--image", str(not_image), "--expr", "the cup"], "cannot decode"),
        (["--image", str(image_path), "--expr", "  "], "empty"),
        (["--image", str(image_path), "--expr", "the cup", "--top-k", "0"], "outside"),
    ]
    bomb, tiny, bmp = tmp_path / "bomb.png", tmp_path / "tiny.png", tmp_path / "scene.bmp"
    bomb.write_bytes(png_claiming(20000, 20000))  # a 389 KB PNG like it once cost 2.6 GB
    cv2.imwrite(str(tiny), np.zeros((1, 640, 3), np.uint8))
    cv2.imwrite(str(bmp), np.zeros((64, 64, 3), np.uint8))
    cases += [
        (["--image", str(bomb), "--expr", "the cup"], "would decode to 20000x20000"),
        (["--image", str(tiny), "--expr", "the cup"], "too small to ground"),
        (["--image", str(bmp), "--expr", "the cup"], "no PNG or JPEG size"),
        (["--image", str(tmp_path), "--expr", "the cup"], "does not exist"),
    ]
    for extra, message in cases:
        assert main(["ground", *extra, "--model", str(tiny_model_dir)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (extra, err)
    assert main(["ground", "--image", str(image_path), "--expr", "the cup", "--model", str(broken_model)]) == 2
    assert "not an echogen model directory" in capsys.readouterr().err


def test_imagine_rejects_bad_numbers(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    layout = _layout(tmp_path, GOOD_LAYOUT)
    base = ["imagine", "--layout", str(layout), "--model", str(tiny_model_dir)]
    assert main([*base, "--out", str(tmp_path / "a.png"), "--guidance", "nan"]) == 2
    assert main([*base, "--out", str(tmp_path / "a.png"), "--temperature", "-1"]) == 2
    assert main([*base, "--out", str(tmp_path / "a.jpg")]) == 2
    assert capsys.readouterr().err.count("\n") == 3


def test_model_init_then_bench_json(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    assert main(["model-init", "--preset", "tiny", "--out", str(model_dir)]) == 0
    result = subprocess.run(
        [sys.executable, "-m", "echogen_ros", "bench", "--model", str(model_dir), "--iterations", "5",
         "--imagine-iterations", "1", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["ground_p50_ms"] > 0 and figures["ground_gflop"] > 0 and figures["imagine_p50_ms"] > 0
    assert figures["ground_top2_p50_ms"] > 0 and figures["find_p50_ms"] > 0 and figures["find_vs_ground"] > 0
    checks = ("relation", "ordinal", "category", "closer_look")
    assert all(figures[f"find_{check}_check_vs_find"] > 0 for check in checks)
    # a fraction of a peak measured moments apart on a shared machine: positive and finite, not below 1
    assert 0 < figures["ground_peak_fraction"] < np.inf and np.isfinite(figures["matmul_peak_fp32_gflops"])


def test_plan_writes_plan_json_and_imagined_png(tiny_model_dir: Path, image_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    # a random model's boxes sit at the image's bottom edge: "above" leaves room for the goal box
    args = ["plan", "--image", str(image_path), "--instruction", "put the red cup above the plate",
            "--out", str(out), "--model", str(tiny_model_dir), "--min-score", "0", "--seed", "2"]  # fmt: skip
    assert main(args) == 0
    plan = json.loads((out / "plan.json").read_text())
    assert set(plan) >= {"action", "target", "anchors", "relation", "goal_layout", "imagined", "cycle_iou",
                         "satisfied_now", "verdict_reason"}  # fmt: skip
    assert plan["action"] == "put" and plan["relation"] == "above" and plan["imagined"] == "imagined.png"
    assert set(plan["target"]) >= {"phrase", "box", "goal_box"} and plan["anchors"][0]["phrase"] == "the plate"
    assert cv2.imread(str(out / "imagined.png")).shape == (480, 640, 3)
    assert 0.0 <= plan["cycle_iou"] <= 1.0
    assert plan["cycle_passed"] is (plan["cycle_iou"] >= CYCLE_THRESHOLD)


def test_plan_and_verify_errors_exit_2(tiny_model_dir: Path, image_path: Path, tmp_path: Path, capsys) -> None:
    base = ["--image", str(image_path), "--model", str(tiny_model_dir)]
    assert main(["verify", *base, "--instruction", "dance for me"]) == 2
    assert "supported" in capsys.readouterr().err
    # a random model's scores are far below the default threshold: the target is "not found", and why
    assert main(["plan", *base, "--instruction", "put the cup left of the plate", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    unsure = ("< 0.5", "closer-look check")  # its box is tiny: a closer look may fail it before its probability
    assert err.count("\n") == 1 and "cannot find 'the cup' in the image: " in err and any(w in err for w in unsure), err
    assert not (tmp_path / "p").exists()
    # a word it does not know: refused with the word, before anything is planned
    plan = ["plan", *base, "--instruction", "put the scissors left of the plate", "--out", str(tmp_path / "p")]
    assert main([*plan, "--threshold", "0"]) == 2
    assert "'the scissors' names no object I know" in capsys.readouterr().err
    assert main(["verify", *base, "--instruction", "put the scissors left of the plate", "--threshold", "0"]) == 2
    assert 'did not understand "scissors"' in capsys.readouterr().err
    # verify says what it could not find, and why, as its verdict
    assert main(["verify", *base, "--instruction", "put the cup left of the plate"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["status"] == "cannot_tell" and verdict["reason"].startswith("cannot find the cup, the plate in")
    assert "(the cup: " in verdict["reason"] and any(w in verdict["reason"] for w in unsure)
    assert main(["verify", *base, "--instruction", "put the cup left of the plate", "--min-score", "0"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["status"] in ("satisfied", "not_satisfied", "cannot_tell") and "reason" in verdict


def test_node_overhead_benchmark_reports_stages(capsys) -> None:
    assert main(["bench-node", "--iterations", "10", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"decode_p50_ms", "preprocess_p50_ms", "postprocess_p50_ms", "total_p50_ms"} <= set(result)
    assert 0 < result["total_p50_ms"] < 1000
