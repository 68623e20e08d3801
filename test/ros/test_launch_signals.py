"""`ros2 launch echogen_ros bringup.launch.py use_sim_camera:=true` stopped as users stop it: Ctrl-C (SIGINT to
the whole process group, as a terminal sends it) and SIGTERM to `ros2 launch` alone (as systemd or a
container runtime sends it). Ctrl-C: both processes exit cleanly, with no escalation to SIGKILL, after the
node's on_shutdown ran. SIGTERM: Humble's launch exits at once without stopping its processes ("can result
in orphaned processes"), so the nodes must stop themselves: none is left running, and the node's log says
on_shutdown ran. Needs ROS 2 and the colcon install sourced (run by `colcon test`)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

CLEAN = "process has finished cleanly"


def _launch(domain: int, log_dir) -> tuple[subprocess.Popen, list[str]]:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1", ROS_LOG_DIR=str(log_dir))
    process = subprocess.Popen(
        ["ros2", "launch", "echogen_ros", "bringup.launch.py", "use_sim_camera:=true"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    return process, lines


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited


def _wait_for(lines: list[str], text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in line for line in lines):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize(("how", "domain"), [("ctrl-c", 71), ("sigterm", 72)])
def test_launch_stops_cleanly(how: str, domain: int, tmp_path) -> None:
    process, lines = _launch(domain, tmp_path)
    try:
        assert _wait_for(lines, "[echogen]: active", 120), "".join(lines[-30:])
        pids = [int(p) for p in re.findall(r"process started with pid \[(\d+)\]", "".join(lines))]
        assert len(pids) == 2, "".join(lines)
        if how == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [pid for pid in pids if _alive(pid)]
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever is left of the group, if anything
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    time.sleep(0.5)  # the reader thread drains the pipe
    text = "".join(lines)
    node_logs = "".join(path.read_text(errors="replace") for path in tmp_path.glob("*.log"))
    assert not left, f"processes {left} still running after {how}"
    assert "shut down (model freed)" in node_logs, node_logs[-3000:]
    assert "Traceback" not in text + node_logs, (text + node_logs)[-3000:]
    if how == "ctrl-c":
        assert code == 0, text[-3000:]
        assert text.count(CLEAN) == 2 and "escalating" not in text, text[-3000:]
