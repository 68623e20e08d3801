"""The README's ROS 2 blocks, run as a reader runs them, in one shell: the install block (ROS already sourced,
the clone a link to this checkout, the workspace `~/ros2_ws` under a temporary HOME), then the launch, topic,
service, action and parameter block against the package it built, then `ros2 bag info`/`play` on a bag that
`echogen bag` wrote. Which blocks these are, and the swaps: test/readme_blocks.py (test/test_readme.py runs
every other block under `make test`).

Runs under `colcon test` (`make ros-test`); without `ros2` it fails rather than skips. Everything it starts
runs in one session on its own ROS domain and is stopped on the way out.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from readme_blocks import ROOT, ROS_BLOCKS, RUN_LANGUAGES, ci_form, entry, readme_blocks  # noqa: E402

DOMAIN_ID = 64
TIMEOUT_S = 600
# the bag the README's `echogen bag` line writes, made here with the installed package
MAKE_BAG = ('python -m echogen_ros demo --scenes 1 --out demo_out\n'
            'python -m echogen_ros bag --in demo_out/bag --out grounded --instruction "find the plate"')  # fmt: skip


def _script() -> str:
    """The ROS blocks in README order, in their CI form, as one shell session."""
    parts = []
    for block in readme_blocks():
        swaps = entry(ROS_BLOCKS, block)
        if swaps is None or block.language not in RUN_LANGUAGES:  # a `text` block is shown, not run
            continue
        if block.name.startswith("ros2 bag info"):
            parts.append(f"cd {{work}}\n{MAKE_BAG}")
        parts.append(ci_form(block, swaps))
    assert len(parts) == len(ROS_BLOCKS) + 1, "a ROS block of readme_blocks.ROS_BLOCKS is missing from README.md"
    return "\n".join(parts)


def test_readme_ros2_blocks(tmp_path: Path) -> None:
    if shutil.which("ros2") is None:
        pytest.fail("`ros2` is not on PATH: source ROS 2 and the colcon install (this test runs under colcon test)")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "README_REPO": str(ROOT), "ROS_DOMAIN_ID": str(DOMAIN_ID),
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    script = "set -eo pipefail\nset -x\n" + _script().replace("{work}", str(tmp_path))
    process = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        subprocess.run(["ros2", "daemon", "stop"], env=env, capture_output=True, timeout=60)
    tail = output[-6000:]
    assert process.returncode == 0, f"the README's ROS blocks exited {process.returncode}:\n{tail}"
    assert (home / "ros2_ws" / "install" / "echogen_ros").is_dir(), tail
    for expected in (
        "detections:",
        "frame_id: sim_camera_optical",
        "success=True",
        "Goal accepted",
        "Goal finished with status: ",
        "Set parameter successful",
        "/echogen/detections",
    ):
        assert expected in output, f"{expected!r} not in the output:\n{tail}"
