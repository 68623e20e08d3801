"""Hostile inputs to whole `echogen` processes: outputs on a real read-only mount, a bad limit in the
environment, and peak memory against twin inputs that differ only in the size they declare."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

GOOD_LAYOUT = {"caption": "", "width": 320, "height": 240, "objects": [{"label": "red cup", "box": [10, 20, 90, 100]}]}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("declared")
    bomb, garbage = root / "real_bomb.png", root / "garbage.jpg"
    bomb.write_bytes(cv2.imencode(".png", np.full((4096, 4096, 3), 90, np.uint8))[1].tobytes())  # valid, ~50 KB
    garbage.write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))
    return {"model": tiny_model_dir, "real_bomb": bomb, "jpeg_garbage": garbage}


def test_outputs_on_a_read_only_mount_are_one_line(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A real read-only file system (a tmpfs mounted read-only in a private mount namespace): every writer
    says so in one line and exits 2 (once an OSError traceback)."""
    import subprocess
    import sys

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("needs `unshare -m` (root or user namespaces) to mount a read-only file system")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    layout = tmp_path / "layout.json"
    layout.write_text(json.dumps(GOOD_LAYOUT))
    python = f"{sys.executable} -m echogen_ros"
    commands = [
        f"{python} world --count 1 --out {read_only}/w",
        f"{python} imagine --layout {layout} --out {read_only}/x.png --model {tiny_model_dir}",
        f"{python} demo --scenes 1 --out {read_only}/d --model {tiny_model_dir}",
    ]
    for command in commands:
        script = f"mount -t tmpfs -o ro,size=1m tmpfs {read_only} && {command}"
        result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)
        lines = [line for line in result.stderr.splitlines() if line.startswith("echogen: error:")]
        assert result.returncode == 2 and len(lines) == 1 and "Read-only file system" in lines[0], result.stderr
        assert "Traceback" not in result.stderr


def _run_measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, int]:
    """`python -m echogen_ros ARGV` in a child: (exit code, stderr, the child's peak RSS in KiB)."""
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen([sys.executable, "-m", "echogen_ros", *argv], stdout=subprocess.DEVNULL, stderr=err,
                                 env={**os.environ, **(env or {})})  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return child.returncode, err.read().decode(), usage.ru_maxrss


def test_a_bad_limit_in_the_environment_is_one_line(tmp_path: Path) -> None:
    for name, value, message in [("ECHOGEN_MAX_TEXT_CHARS", "many", "must be a positive integer"),
                                 ("ECHOGEN_MIN_FRAME_SIDE", "0", "must be an integer in [1, 4096]")]:  # fmt: skip
        code, err, _ = _run_measured(["world", "--count", "1", "--out", str(tmp_path / "w")], {name: value})
        assert code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err, err
        assert not (tmp_path / "w").exists()


def test_no_small_input_costs_memory_by_the_size_it_declares(files: dict[str, Path], tmp_path: Path) -> None:
    """Peak memory of whole processes, each against a twin that differs only in what the input declares: a
    100-byte layout of 4096 x 4096 costs what one of 1280 x 1280 does (once 50 MB of image, its resize and
    PNG), and a valid 50 KB one-colour PNG of 4096 x 4096 what a garbage file does (once 50 MB decoded)."""

    def layout(side: int) -> Path:
        path = tmp_path / f"layout{side}.json"
        path.write_text(json.dumps({"width": side, "height": side, "objects": [{"label": "red cup", "box": [
            side // 4, side // 4, side // 2, side // 2]}]}))  # fmt: skip
        return path

    runs = {}
    for side in (1280, 4096):
        runs[side] = _run_measured(["imagine", "--layout", str(layout(side)), "--out", str(tmp_path / f"{side}.png"),
                                    "--model", str(files["model"])])  # fmt: skip
        assert runs[side][0] == 0, runs[side][1]
    assert len(layout(4096).read_bytes()) < 110
    assert runs[4096][2] - runs[1280][2] < 12 * 1024, runs  # KiB
    for name in ("real_bomb", "jpeg_garbage"):
        code, err, peak = _run_measured(["ground", "--image", str(files[name]), "--expr", "the cup",
                                         "--model", str(files["model"])])  # fmt: skip
        assert code == 2, err
        runs[name] = peak
    assert files["real_bomb"].stat().st_size < 100_000
    assert runs["real_bomb"] - runs["jpeg_garbage"] < 12 * 1024, runs
