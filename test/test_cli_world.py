"""`echogen world` / `world-bench` / `demo` from the command line: contract and bad input."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from echogen_ros.cli import main


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "echogen_ros", *args], capture_output=True, text=True, timeout=120)


def test_world_writes_the_contract(tmp_path: Path) -> None:
    out = tmp_path / "w"
    result = _run(
        "world",
        "--seed",
        "3",
        "--count",
        "3",
        "--out",
        str(out),
        "--width",
        "160",
        "--height",
        "120",
        "--min-objects",
        "2",
        "--max-objects",
        "4",
        "--split",
        "heldout",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "annotations.json").read_text())
    assert len(data["images"]) == 3 and len(list((out / "images").glob("*.png"))) == 3
    assert all(im["width"] == 160 for im in data["images"])
    assert all(r["split"] == "heldout" for r in data["refs"])
    present = sum(not r["no_target"] for r in data["refs"])
    assert f"{present} expressions (+ {len(data['refs']) - present} with no referent)" in result.stdout


BAD = [
    (["--count", "0"], "outside"),
    (["--count", "x"], "integer"),
    (["--count", "2", "--width", "8"], "outside"),
    (["--count", "2", "--min-objects", "5", "--max-objects", "3"], "larger than"),
    (["--count", "2", "--max-objects", "13"], "outside"),
    (["--count", "2", "--split", "nope"], "invalid choice"),
    (["--count", "2", "--seed", "-1"], "outside"),
    (["--count", "2"], "required"),
    (["--count", "2", "--scale-range", "0.1", "1"], "scale_range"),
    (["--count", "2", "--scale-range", "1.2", "1.1"], "scale_range"),
    (["--count", "2", "--border-cut", "0.5"], "border_cut"),
]


@pytest.mark.parametrize(("extra", "message"), BAD)
def test_bad_arguments_exit_2_with_one_line_and_no_output(tmp_path: Path, capsys, extra, message) -> None:
    out = tmp_path / "out"
    args = ["world", *extra] + ([] if extra == ["--count", "2"] else ["--out", str(out)])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("echogen: error:")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no partial directory either


def test_existing_directory_is_not_clobbered(tmp_path: Path, capsys) -> None:
    out = tmp_path / "w"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["world", "--count", "1", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert main(["world", "--count", "1", "--out", str(out), "--overwrite"]) == 2  # not ours: never replaced
    assert "echogen did not write it" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    ours = tmp_path / "ours"
    assert main(["world", "--count", "1", "--out", str(ours)]) == 0
    assert main(["world", "--count", "2", "--out", str(ours), "--overwrite"]) == 0  # an earlier export: replaced
    assert len(list((ours / "images").iterdir())) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours", "w"]  # no partial or old copy left


@pytest.mark.parametrize("where", [".", "..", "~"])
def test_overwrite_never_replaces_the_current_directory_its_parents_or_home(
    tmp_path: Path, monkeypatch, capsys, where: str
) -> None:
    """`--out . --overwrite` once deleted everything in the current directory; it is refused, even when the
    directory is an earlier export."""
    home, work = tmp_path / "home", tmp_path / "home" / "work"
    assert main(["world", "--count", "1", "--out", str(work)]) == 0  # ours, marker and all
    monkeypatch.setenv("HOME", str(home if where != "~" else work))
    monkeypatch.chdir(work)
    out = Path(where).expanduser()
    before = sorted(p.name for p in work.iterdir())
    assert main(["world", "--count", "1", "--out", str(out), "--overwrite"]) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert sorted(p.name for p in work.iterdir()) == before


def test_a_signal_mid_export_leaves_the_old_state_and_never_blocks_a_rerun(tmp_path: Path) -> None:
    out = tmp_path / "w"
    command = [sys.executable, "-m", "echogen_ros", "world", "--count", "100000", "--out", str(out)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".w.partial-*/images/*.png")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130 and "interrupted" in process.stderr.read()
    assert list(tmp_path.iterdir()) == []  # neither a partial export nor a hidden folder of PNGs
    killed = subprocess.Popen(command)
    while not list(tmp_path.glob(".w.partial-*/images/*.png")) and time.monotonic() < deadline + 60:
        time.sleep(0.05)
    killed.kill()  # SIGKILL: nothing can clean up; the partial folder is hidden and left
    killed.wait()
    assert not out.exists() and len(list(tmp_path.glob(".w.partial-*"))) == 1
    assert main(["world", "--count", "1", "--out", str(out)]) == 0  # the rerun is not blocked ...
    assert [p.name for p in tmp_path.iterdir()] == ["w"]  # ... and removes what the killed run left


def test_one_line_error_from_the_real_process(tmp_path: Path) -> None:
    result = _run("world", "--count", "-5", "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "outside" in result.stderr


def test_world_bench_reports_json() -> None:
    result = _run("world-bench", "--count", "20", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["scenes"] == 20 and figures["scenes_per_s"] > 0


def test_demo_writes_a_report_and_a_readable_bag(tiny_model_dir: Path, tmp_path: Path) -> None:
    from rosbags.highlevel import AnyReader

    out = tmp_path / "demo"
    # at threshold 0 a random model finds every referent, so every step, imagining too, runs
    result = _run("demo", "--out", str(out), "--scenes", "3", "--model", str(tiny_model_dir), "--threshold", "0")
    assert result.returncode == 0, result.stderr
    report = (out / "report.html").read_text()
    assert report.count("<section>") >= 3 and "data:image/png;base64," in report and "imagined goal scene" in report
    frames = {}  # scene → the plain camera frame shown beside an answer "not in the scene"
    for section in report.split("<section>")[1:]:
        figures = dict(re.findall(r'base64,([^"]+)" width="320"><figcaption>([^<]+)<', section))
        frames.update({re.search(r"<h2>scene (\d)", section)[1]: png for png, title in figures.items()
                       if title == "not in the scene"})  # fmt: skip
    assert sorted(frames) == ["0", "1", "2"] and len(set(frames.values())) == 3  # three different scenes
    goals = [s for s in report.split("<section>") if ": goal " in s]
    assert len(goals) >= 3 and all("goal layout on the live frame" in s and "live frame: the referents" in s
                                   and "verdict on the live frame" in s and "IoU with the truth" in s
                                   for s in goals if "no goal" not in s)  # fmt: skip
    space = ("/camera_info", "/depth", "/tf_static", "/echogen/detections_3d")
    with AnyReader([out / "bag"]) as reader:
        topics = {c.topic for c in reader.connections if c.msgcount}
        read = {c.topic: [reader.deserialize(raw, c.msgtype) for _, _, raw in reader.messages(connections=[c])]
                for c in reader.connections if c.topic in space}  # fmt: skip
    assert {"/image", "/instruction", "/echogen/detections", "/echogen/imagined", "/echogen/goal_layout"} <= topics
    assert set(space) <= topics  # the sim camera's depth, K and TF in, the 3D results out (as the node's)
    assert len(read["/depth"]) == len(read["/camera_info"]) == 3 and read["/depth"][0].encoding == "16UC1"
    assert read["/camera_info"][0].k[0] > 0 and read["/camera_info"][0].p[0] == read["/camera_info"][0].k[0]
    assert read["/tf_static"][0].transforms[0].header.frame_id == "table"
    assert {m.header.frame_id for m in read["/echogen/detections_3d"]} == {"table"}
    assert report.count("3D centre of the target (table frame)") >= 3  # beside the truth, or why depth placed none
    _bag_mode_reads_the_demos_depth(out / "bag", tmp_path / "rerun", tiny_model_dir)
    assert str(out / "report.html") in result.stdout
    rerun = _run("demo", "--out", str(out), "--scenes", "1", "--model", str(tiny_model_dir))
    shown = (out / "report.html").read_text().count("<section>")
    assert rerun.returncode == 0 and shown < report.count("<section>")  # replaced whole
    assert "not found: " in (out / "report.html").read_text()  # at the node's threshold it finds nothing, and says why
    foreign = tmp_path / "papers"
    (foreign / "bag").mkdir(parents=True)
    (foreign / "bag" / "thesis.tex").write_text("keep")  # `demo --out DIR` once removed DIR/bag silently
    refused = _run("demo", "--out", str(foreign), "--scenes", "1", "--model", str(tiny_model_dir))
    assert refused.returncode == 2 and "echogen did not write it" in refused.stderr
    assert (foreign / "bag" / "thesis.tex").read_text() == "keep"


def _bag_mode_reads_the_demos_depth(bag: Path, out: Path, model_dir: Path) -> None:
    """`echogen bag` over the demo's bag finds its depth, CameraInfo and /tf_static by itself and writes the same
    3D topic, in the table frame, once for each colour frame."""
    from rosbags.highlevel import AnyReader

    from echogen_ros.bag import process_bag
    from echogen_ros.model.echogen import EchoGen
    from echogen_ros.runtime.core import RuntimeConfig

    config = RuntimeConfig(every_frames=1, every_seconds=0.0, score_threshold=0.0).changed(target_frame="table")
    summary = process_bag(bag, out, EchoGen.load(model_dir), config=config)
    assert summary.frames == 3 and summary.replaced > 0  # the demo's own outputs, replaced by this run's
    with AnyReader([out]) as reader:
        (located,) = [c for c in reader.connections if c.topic == "/echogen/detections_3d"]
        frames = [reader.deserialize(raw, located.msgtype) for _, _, raw in reader.messages(connections=[located])]
    assert len(frames) == 3 and {m.header.frame_id for m in frames} == {"table"}


@pytest.mark.skipif(
    not (Path(__file__).resolve().parents[1] / "echogen_ros" / "model" / "default" / "echogen.json").is_file(),
    reason="this checkout has no embedded model (echogen_ros/model/default is missing)",
)
def test_demo_without_a_model_uses_the_embedded_one(tmp_path: Path) -> None:
    result = _run("demo", "--out", str(tmp_path / "d"), "--scenes", "1")
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "d" / "report.html").read_text()
    assert "randomly initialised" not in result.stderr + report
    assert "the embedded default model" in report and "trained through cycle_rl" in report
    assert "cm away" in report and "m in the table frame; the target&#x27;s true box set there" in report  # 3D


def test_demo_without_any_model_says_it_runs_a_random_one(tmp_path: Path, monkeypatch, capsys) -> None:
    from echogen_ros.cli import main
    from echogen_ros.model import echogen

    monkeypatch.setattr(echogen, "DEFAULT_MODEL_DIR", tmp_path / "not-installed")
    assert main(["demo", "--out", str(tmp_path / "d"), "--scenes", "1"]) == 0
    assert "randomly initialised" in capsys.readouterr().err
    assert "randomly initialised" in (tmp_path / "d" / "report.html").read_text()


def test_the_demo_names_the_last_pipeline_stage_and_the_continuations() -> None:
    from echogen_ros.model.echogen import EchoGen
    from echogen_ros.model.provenance import describe_model

    model = EchoGen.create("tiny")
    mapped = {"stage": "vq", "steps": 11, "config": {"vq": {"decoder_only": True}, "model": {"decoder_map": True}}}
    model.manifest = {**model.manifest, "stage": "pmtp", "training": {"vq": {}, "pmtp": {}, "djo": {},
                      "continuations": [{"stage": "pmtp", "steps": 5}, {"stage": "vision_transplant", "steps": 9},
                                        {"stage": "djo", "steps": 2},
                                        {"stage": "vq", "steps": 7,
                                         "config": {"vq": {"decoder_only": True}}},
                                        {"stage": "tokenizer_transplant"}, {"stage": "vq", "steps": 8},
                                        {"stage": "pmtp", "steps": 6, "config": {"model": {"generation_only": True}}},
                                        {"stage": "pmtp", "steps": 4},
                                        {"stage": "pmtp", "steps": 3,
                                         "config": {"model": {"vision_only": True}}},
                                        {"stage": "tokenizer_transplant", "outer_level": {"steps": 600},
                                         "after": {"image_size": 128}},
                                        mapped]}}  # fmt: skip
    text = describe_model(model, "here")
    assert (
        "trained through djo, then 5 pmtp steps + a new vision encoder + 2 djo steps + 7 VQ-decoder steps"
        " + a new image tokenizer + 8 vq steps + 6 pmtp steps (generation path only) + 4 pmtp steps"
        " + 3 pmtp steps (vision encoder only) + a VQ level drawing 128 px + 11 VQ-decoder steps (reading the layout)"
    ) in text
    runs = [{"stage": "pmtp", "steps": 1500}, {"stage": "pmtp", "steps": 700}, {"stage": "djo", "steps": 3},
            {"stage": "vision_transplant"}, {"stage": "vision_transplant"},
            {"stage": "pmtp"}, {"stage": "pmtp", "steps": 4}]  # fmt: skip
    model.manifest = {**model.manifest, "training": {"continuations": runs}}
    assert (
        "then 2,200 pmtp steps in 2 runs + 3 djo steps + a new vision encoder + a new vision encoder"
        " + ? pmtp steps in 2 runs"
    ) in describe_model(model, "here")


def test_world_draws_objects_of_other_sizes_cut_by_the_border(tmp_path: Path, capsys) -> None:
    args = ["world", "--count", "6", "--seed", "1", "--max-objects", "12", "--border-cut", "0.4"]
    assert main([*args, "--out", str(tmp_path / "same")]) == 0
    assert main([*args, "--out", str(tmp_path / "small"), "--scale-range", "0.5", "0.6"]) == 0
    same, small = (json.loads((tmp_path / d / "annotations.json").read_text()) for d in ("same", "small"))
    widths = [[a["bbox"][2] for a in data["annotations"]] for data in (same, small)]
    assert sum(widths[1]) / len(widths[1]) < 0.7 * sum(widths[0]) / len(widths[0])
    assert any(a["bbox"][0] == 0 or a["bbox"][0] + a["bbox"][2] == 640 for a in same["annotations"])  # cut
