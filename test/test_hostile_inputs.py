"""Hostile inputs across every CLI entry point, as a table: each case must exit 2 with exactly one line on
stderr (no traceback), write no output, and leave every other file as it was (the current directory
included). Then property-based fuzzing (hypothesis) of what reads untrusted bytes: raw and compressed
frames, layout JSON, model manifests and instruction text, which may only answer with their own error."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from bombs import png_claiming
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rosbags.rosbag2 import StoragePlugin, Writer

from echogen_ros.cli import main
from echogen_ros.interfaces import typestore
from echogen_ros.model.checkpoint import CheckpointError, read_manifest
from echogen_ros.model.layout import Layout
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.core import Runtime, RuntimeConfig
from echogen_ros.runtime.images import ImageError, compressed_to_rgb, to_rgb
from echogen_ros.runtime.messages import MessageTypes
from echogen_ros.world.dataset import world_sample

STORE = typestore("humble")
MSGS = MessageTypes.from_typestore(STORE)
GOOD_LAYOUT = {"caption": "", "width": 320, "height": 240, "objects": [{"label": "red cup", "box": [10, 20, 90, 100]}]}


def _png(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", rgb)[1].tobytes()


def _bag(path: Path) -> None:
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        images = writer.add_connection("/image", "sensor_msgs/msg/Image", typestore=STORE)
        rgb = world_sample(0, 0, "test").image(64, 48)
        message = conv.image_message(MSGS, rgb, conv.header(MSGS, 1.0, "cam"))
        writer.write(images, 1_000_000_000, STORE.serialize_cdr(message, "sensor_msgs/msg/Image"))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    """The hostile files the cases point at, written once (the cases must not change them)."""
    root = tmp_path_factory.mktemp("hostile")
    f = {"root": root, "model": tiny_model_dir}

    def write(name: str, data) -> Path:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        return path

    f["image"] = write("scene.png", _png(cv2.cvtColor(world_sample(0, 2, "test").image(320, 240), cv2.COLOR_RGB2BGR)))
    f["bomb"] = write("bomb.png", png_claiming(20000, 20000))
    f["wide_bomb"] = write("wide.png", png_claiming(1_000_000, 1))
    f["tiny"] = write("tiny.png", _png(np.zeros((1, 1, 3), np.uint8)))
    f["thin"] = write("thin.png", _png(np.zeros((640, 2, 3), np.uint8)))
    f["text_png"] = write("text.png", "hello")
    f["empty_png"] = write("empty.png", b"")
    f["truncated_png"] = write("truncated.png", _png(np.zeros((64, 64, 3), np.uint8))[:50])
    f["bmp"] = write("scene.bmp", cv2.imencode(".bmp", np.zeros((64, 64, 3), np.uint8))[1].tobytes())
    f["jpeg_garbage"] = write("garbage.jpg", b"\xff\xd8\xff\xe0" + bytes(200))
    f["real_bomb"] = write("real_bomb.png", _png(np.full((4096, 4096, 3), 90, np.uint8)))  # a valid PNG, ~50 KB
    layouts = {
        "huge": {"width": 40000, "height": 40000, "objects": [{"label": "cup", "box": [1, 1, 5, 5]}]},
        "many": {**GOOD_LAYOUT, "objects": [{"label": "cup", "box": [1, 1, 5, 5]}] * 3000},
        "outside": {**GOOD_LAYOUT, "objects": [{"label": "cup", "box": [10, 20, 400, 100]}]},
        "degenerate": {**GOOD_LAYOUT, "objects": [{"label": "cup", "box": [50, 20, 40, 100]}]},
        "empty_label": {**GOOD_LAYOUT, "objects": [{"label": " ", "box": [1, 1, 5, 5]}]},
        "three_numbers": {**GOOD_LAYOUT, "objects": [{"label": "cup", "box": [1, 1, 5]}]},
        "string_box": {**GOOD_LAYOUT, "objects": [{"label": "cup", "box": "1 1 5 5"}]},
        "no_objects": {**GOOD_LAYOUT, "objects": []},
        "float_size": {**GOOD_LAYOUT, "width": 320.5},
        "negative_size": {**GOOD_LAYOUT, "width": -320},
        "list": [1, 2, 3],
    }
    for name, data in layouts.items():
        f[f"layout_{name}"] = write(f"layouts/{name}.json", json.dumps(data))
    f["layout_nan"] = write("layouts/nan.json", '{"width": 320, "height": 240, "objects": '
                                                '[{"label": "cup", "box": [NaN, 1, 5, 5]}]}')  # fmt: skip
    f["layout_deep"] = write("layouts/deep.json", '{"a":' * 100_000 + "1" + "}" * 100_000)
    f["layout_big"] = write("layouts/big.json", " " * (2 << 20) + "{}")
    f["layout_broken"] = write("layouts/broken.json", "{not json")
    f["layout_binary"] = write("layouts/binary.json", b"\xff\xfe\x00garbage")
    f["layout"] = write("layouts/good.json", json.dumps(GOOD_LAYOUT))
    f["not_a_bag"] = write("notabag/metadata.yaml", "rosbag2_bagfile_information: [1, 2")
    f["ros1"] = write("old.bag", b"#ROSBAG V2.0\n" + bytes(100))
    f["bag"] = root / "bag"
    _bag(f["bag"])
    mcap = next(f["bag"].glob("*.mcap"))
    f["truncated_bag"] = root / "truncated_bag"
    shutil.copytree(f["bag"], f["truncated_bag"])
    (f["truncated_bag"] / mcap.name).write_bytes(mcap.read_bytes()[:300])
    f["file"] = write("a_file", "not a folder")
    foreign = root / "foreign"
    (foreign / "bag").mkdir(parents=True)
    (foreign / "bag" / "thesis.tex").write_text("keep")
    f["foreign"] = foreign
    for name, edit in {
        "manifest_list": lambda d: (d / "echogen.json").write_text("[]"),
        "manifest_passwd": lambda d: _manifest(d, lambda m: m["files"].__setitem__("../../../../etc/passwd", "0")),
        "manifest_proc": lambda d: _manifest(d, lambda m: m["files"].__setitem__("/proc/self/mem", "0")),
        "manifest_types": lambda d: _manifest(d, lambda m: m.__setitem__("scheme", "tiny")),
        "manifest_broken": lambda d: (d / "echogen.json").write_text("{"),
        "weights_truncated": lambda d: (d / "model.safetensors").write_bytes(b"\x10"),
    }.items():
        shutil.copytree(tiny_model_dir, root / name)
        edit(root / name)
        f[name] = root / name
    return f


def _manifest(directory: Path, edit) -> None:
    data = json.loads((directory / "echogen.json").read_text())
    edit(data)
    (directory / "echogen.json").write_text(json.dumps(data))


def _ground(image: str, expr: str = "the cup", *extra: str) -> list[str]:
    return ["ground", "--image", f"{{{image}}}", "--expr", expr, "--model", "{model}", *extra]


def _imagine(layout: str, out: str = "{out}/x.png", *extra: str) -> list[str]:
    return ["imagine", "--layout", f"{{{layout}}}", "--out", out, "--model", "{model}", *extra]


def _bagrun(source: str, out: str = "{out}/bag", *extra: str) -> list[str]:
    return ["bag", "--in", f"{{{source}}}", "--out", out, "--model", "{model}", *extra]


CASES = [
    # world
    (["world", "--count", "0", "--out", "{out}/w"], "outside"),
    (["world", "--count", "-5", "--out", "{out}/w"], "outside"),
    (["world", "--count", "ten", "--out", "{out}/w"], "integer"),
    (["world", "--count", "1", "--width", "8", "--out", "{out}/w"], "outside"),
    (["world", "--count", "1", "--width", "100000", "--out", "{out}/w"], "outside"),
    (["world", "--count", "1", "--min-objects", "9", "--max-objects", "2", "--out", "{out}/w"], "larger than"),
    (["world", "--count", "1", "--split", "secret", "--out", "{out}/w"], "invalid choice"),
    (["world", "--count", "1", "--out", ".", "--overwrite"], "refusing to replace"),
    (["world", "--count", "1", "--out", "..", "--overwrite"], "refusing to replace"),
    (["world", "--count", "1", "--out", "{foreign}", "--overwrite"], "echogen did not write it"),
    (["world", "--count", "1", "--out", "{file}"], "not a directory"),
    (["world", "--count", "1", "--out", "{file}/w"], "cannot write"),
    (["world", "--count", "1", "--seed", "-1", "--out", "{out}/w"], "outside"),
    # ground
    (_ground("bomb"), "would decode to 20000x20000"),
    (_ground("real_bomb"), "times its size (limit 500"),
    (_ground("wide_bomb"), "1000000x1 is outside"),
    (_ground("tiny"), "too small to ground"),
    (_ground("thin"), "too small to ground"),
    (_ground("text_png"), "no PNG or JPEG size"),
    (_ground("empty_png"), "no data"),
    (_ground("truncated_png"), "cannot decode"),
    (_ground("bmp"), "no PNG or JPEG size"),
    (_ground("jpeg_garbage"), "no PNG or JPEG size"),
    (_ground("root"), "does not exist"),
    (["ground", "--image", "{out}/none.png", "--expr", "the cup", "--model", "{model}"], "does not exist"),
    (_ground("image", ""), "empty"),
    (_ground("image", "   "), "empty"),
    (_ground("image", "the cup " * 60), "characters"),
    (_ground("image", "the cup\x00\x07"), "control characters"),
    (_ground("image", "the cup", "--top-k", "0"), "outside"),
    (_ground("image", "the cup", "--top-k", "100000"), "outside"),
    (_ground("image", "the cup", "--backend", "cuda-magic"), "invalid choice"),
    (_ground("image", "the cup", "--threshold", "1.01"), "outside [0, 1]"),  # a probability
    (_ground("image", "the cup", "--threshold", "nan"), "outside [0, 1]"),
    (["ground", "--image", "{image}", "--expr", "the cup", "--model", "{manifest_list}"], "must hold a JSON object"),
    (["ground", "--image", "{image}", "--expr", "the cup", "--model", "{manifest_passwd}"], "of its own"),
    (["ground", "--image", "{image}", "--expr", "the cup", "--model", "{manifest_proc}"], "of its own"),
    (["ground", "--image", "{image}", "--expr", "the cup", "--model", "{manifest_types}"], "'scheme' must be dict"),
    (["ground", "--image", "{image}", "--expr", "the cup", "--model", "{manifest_broken}"], "not valid JSON"),
    (["ground", "--image", "{image}", "--expr", "the cup", "--model", "{weights_truncated}"], "sha256"),
    (["ground", "--image", "{image}", "--expr", "the cup", "--model", "{root}"], "not an echogen model directory"),
    (["ground", "--image", "{image}", "--expr", "the cup", "--model", "{out}/none"], "does not exist"),
    # imagine
    (_imagine("layout_huge"), "over 4096 a side (raise with ECHOGEN_MAX_LAYOUT_SIDE"),
    (_imagine("layout_many"), "at most"),
    (_imagine("layout_outside"), "outside"),
    (_imagine("layout_degenerate"), "degenerate"),
    (_imagine("layout_empty_label"), "empty label"),
    (_imagine("layout_three_numbers"), "four numbers"),
    (_imagine("layout_string_box"), "four numbers"),
    (_imagine("layout_no_objects"), "no objects"),
    (_imagine("layout_float_size"), "integers"),
    (_imagine("layout_negative_size"), "integers"),
    (_imagine("layout_list"), "must be an object"),
    (_imagine("layout_nan"), "finite"),
    (_imagine("layout_deep"), "nests too deeply"),
    (_imagine("layout_big"), "over 1048576 bytes"),
    (_imagine("layout_broken"), "not valid JSON"),
    (_imagine("layout_binary"), "not valid JSON"),
    (_imagine("root"), "does not exist"),
    (_imagine("layout", "{out}/x.jpg"), ".png"),
    (_imagine("layout", "{file}/x.png"), "cannot write"),
    (_imagine("layout", "{out}/x.png", "--guidance", "nan"), "finite"),
    (_imagine("layout", "{out}/x.png", "--guidance", "inf"), "finite"),
    (_imagine("layout", "{out}/x.png", "--temperature", "-1"), ">= 0"),
    # plan and verify
    (["plan", "--image", "{image}", "--instruction", "dance", "--out", "{out}/p", "--model", "{model}"], "supported"),
    (
        ["plan", "--image", "{bomb}", "--instruction", "find the cup", "--out", "{out}/p", "--model", "{model}"],
        "would decode",
    ),
    (
        ["plan", "--image", "{image}", "--instruction", "find the cup", "--out", "{foreign}", "--model", "{model}"],
        "echogen did not write it",
    ),
    (
        ["plan", "--image", "{image}", "--instruction", "find the cup", "--out", "{file}", "--model", "{model}"],
        "not a directory",
    ),
    (["verify", "--image", "{image}", "--instruction", "throw the ball", "--model", "{model}"], "supported"),
    (["verify", "--image", "{tiny}", "--instruction", "find the cup", "--model", "{model}"], "too small"),
    (
        ["verify", "--image", "{image}", "--instruction", "find the cup", "--model", "{model}", "--threshold", "-1"],
        "outside [0, 1]",
    ),
    (
        ["plan", "--image", "{image}", "--instruction", "find the xyzzy", "--out", "{out}/p", "--model", "{model}"],
        "names no object I know",
    ),  # refused before anything is written
    # bag
    (_bagrun("not_a_bag"), "cannot read input bag"),
    (_bagrun("ros1"), "ROS 1 bag"),
    (_bagrun("file"), "cannot read input bag"),
    (_bagrun("truncated_bag"), "cannot read input bag"),
    (_bagrun("root"), "not a rosbag2 bag"),
    (["bag", "--in", "{out}/none", "--out", "{out}/bag", "--model", "{model}"], "does not exist"),
    (_bagrun("bag", "{foreign}"), "exists"),
    (_bagrun("bag", "{out}/bag", "--image-topic", "/nope"), "not in the bag"),
    (_bagrun("bag", "{out}/bag", "--namespace", "echogen/"), "namespace"),
    (_bagrun("bag", "{out}/bag", "--score-threshold", "2"), "[0, 1]"),
    (_bagrun("bag", "{out}/bag", "--every-frames", "0"), "outside"),
    # eval, demo, model-init, export, bench
    (["eval", "--data", "{out}/none", "--model", "{model}"], "not found"),
    (["eval", "--data", "{root}", "--model", "{model}"], "not found"),
    (["demo", "--out", "{foreign}", "--model", "{model}"], "echogen did not write it"),
    (["demo", "--out", "{file}", "--model", "{model}"], "not a directory"),
    (["demo", "--out", "{out}/d", "--model", "{manifest_proc}"], "of its own"),
    (["model-init", "--out", "{out}/m", "--preset", "colossal"], "unknown preset"),
    (["bench", "--model", "{manifest_list}", "--iterations", "5"], "must hold a JSON object"),
    (["no-such-command"], "invalid choice"),
]


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[f"{i:02d}-{c[0][0]}" for i, c in enumerate(CASES)])
def test_hostile_cli_input_is_one_line_and_touches_nothing(
    files: dict[str, Path], tmp_path: Path, monkeypatch, capsys, argv: list[str], message: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "notes.txt").write_text("mine")
    monkeypatch.chdir(cwd)
    places = {key: str(path) for key, path in files.items()} | {"out": str(out)}
    args = [a.format(**places) for a in argv]
    before = _snapshot(tmp_path) | _snapshot(files["root"])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("echogen: error:") and "Traceback" not in err, err
    assert message in err, err
    assert _snapshot(tmp_path) | _snapshot(files["root"]) == before  # nothing written, nothing removed


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_the_table_covers_every_entry_point() -> None:
    commands = {argv[0] for argv, _ in CASES}
    assert {"world", "ground", "imagine", "plan", "verify", "bag", "eval", "demo", "model-init", "bench"} <= commands
    assert len(CASES) >= 60


# ---- property-based fuzzing of what reads untrusted bytes ------------------------------------------------
ENCODINGS = ["rgb8", "bgr8", "rgba8", "mono8", "mono16", "16UC1", "32FC1", "yuv422", "", "rgb8\x00"]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(width=st.integers(-2, 40), height=st.integers(-2, 40), step=st.integers(-4, 200),
       encoding=st.sampled_from(ENCODINGS), big_endian=st.integers(0, 255), data=st.binary(max_size=4000))  # fmt: skip
def test_raw_frames_decode_or_say_why(width, height, step, encoding, big_endian, data) -> None:
    message = MSGS.Image(header=conv.header(MSGS, 0, "c"), height=max(height, 0), width=max(width, 0),
                         encoding=encoding, is_bigendian=big_endian, step=max(step, 0),
                         data=MSGS.payload(data))  # fmt: skip
    try:
        rgb = to_rgb(message)
    except ImageError:
        return
    assert rgb.dtype == np.uint8 and rgb.shape == (message.height, message.width, 3)


@FUZZ
@given(prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"\xff\xd8\xff\xc0\x00\x11\x08"]),
       body=st.binary(max_size=600),
       fmt=st.sampled_from(["jpeg", "png", "bgr8; jpeg compressed bgr8", "h264"]))  # fmt: skip
def test_compressed_frames_decode_or_say_why(prefix, body, fmt) -> None:
    message = MSGS.CompressedImage(header=conv.header(MSGS, 0, "c"), format=fmt, data=MSGS.payload(prefix + body))
    try:
        rgb = compressed_to_rgb(message)
    except ImageError:
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


@FUZZ
@given(st.binary(min_size=8, max_size=300))
def test_mutated_pngs_decode_or_say_why(noise) -> None:
    png = bytearray(_png(np.full((20, 30, 3), 128, np.uint8)))
    for i, byte in enumerate(noise[:40]):  # overwrite up to 40 bytes at positions the noise chooses
        png[(byte * 7 + i * 13) % len(png)] = noise[-1 - i % len(noise)]
    message = MSGS.CompressedImage(header=conv.header(MSGS, 0, "c"), format="png", data=MSGS.payload(bytes(png)))
    with contextlib.suppress(ImageError):
        compressed_to_rgb(message)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)
LAYOUTISH = st.fixed_dictionaries(
    {"width": JSON | st.integers(-5, 50000), "height": JSON | st.integers(-5, 50000)},
    optional={"caption": JSON, "objects": st.lists(
        st.fixed_dictionaries({}, optional={"label": JSON, "box": st.lists(JSON | st.floats(), max_size=5)}),
        max_size=4) | JSON},
)  # fmt: skip


@FUZZ
@given(JSON | LAYOUTISH)
def test_layout_json_parses_or_says_why(data) -> None:
    with contextlib.suppress(ValueError):
        Layout.from_json(data).validate(12)


@FUZZ
@given(JSON | st.fixed_dictionaries({"format_version": st.just(1), "files": JSON, "scheme": JSON}, optional={
    "preset": JSON, "vision_size": JSON, "image_size": JSON, "max_objects": JSON}))  # fmt: skip
def test_manifests_load_or_say_why(tmp_path_factory: pytest.TempPathFactory, data) -> None:
    directory = tmp_path_factory.mktemp("manifest")
    (directory / "echogen.json").write_text(json.dumps(data))
    with contextlib.suppress(CheckpointError):
        read_manifest(directory)


@pytest.fixture(scope="module")
def fuzz_runtime(tiny_model) -> Runtime:
    return Runtime(tiny_model, MSGS, RuntimeConfig(every_frames=1))


@FUZZ
@given(st.text(max_size=400))
def test_any_instruction_text_is_a_status_line(fuzz_runtime: Runtime, text: str) -> None:
    status = fuzz_runtime.on_instruction(text)
    assert isinstance(status, str) and status
