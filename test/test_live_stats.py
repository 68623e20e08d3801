"""The live benchmark's measurements without ROS: /proc sampling of a real process and the run summary on
hand-made samples whose percentiles, CPU share and RSS growth are known."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from echogen_ros.live_stats import LiveRun, find_process, process_sample, start_ticks, wait_for_process


def test_process_sample_reads_rss_and_cpu_of_a_real_process() -> None:
    rss, cpu = process_sample(os.getpid())
    start = time.process_time()
    while time.process_time() - start < 0.3:
        sum(range(10_000))
    rss_after, cpu_after = process_sample(os.getpid())
    assert rss > 10 and rss_after > 10  # MiB: a Python with numpy loaded
    assert cpu_after - cpu >= 0.2


def test_find_process_by_command_line() -> None:
    marker = "echogen_live_stats_marker_417"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        # waited for: Popen returns at exec, a moment before the child's command line is set (CI read it empty)
        assert wait_for_process(marker, 10.0) == child.pid
        assert find_process("no_such_process_marker_98765") is None
    finally:
        child.kill()
        child.wait()


def test_the_newest_process_is_the_one_started_last() -> None:
    marker = "echogen_live_stats_marker_418"
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        assert wait_for_process(marker, 10.0) == first.pid
        time.sleep(0.05)  # a clock tick (1/100 s) apart at least
        second = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
        try:
            assert 0 < start_ticks(os.getpid()) <= start_ticks(first.pid) < start_ticks(second.pid)
            assert wait_for_process(marker, 10.0, exclude=first.pid) == second.pid
            assert find_process(marker) == second.pid  # by start time, not by pid (pids wrap around)
        finally:
            second.kill()
            second.wait()
    finally:
        first.kill()
        first.wait()


def test_summary_of_a_known_run() -> None:
    run = LiveRun(warmup=10.0)
    # 130 s at one sample a second; RSS 100 MiB until warm-up, then 200 growing to 202; one CPU core half busy
    run.samples = [(float(t), 100.0 if t < 10 else 200.0 + 2.0 * (t - 10) / 120, 0.5 * t) for t in range(131)]
    run.latencies = [(t / 10, 50.0 + (t % 100)) for t in range(1300)]  # 50..149 ms, evenly
    summary = run.summary()
    assert summary["seconds"] == 130.0 and summary["detections"] == 1300
    assert summary["cpu_percent"] == pytest.approx(50.0)
    assert summary["rss_mib_after_warmup"] == 200.0 and summary["rss_growth_percent"] == pytest.approx(1.0)
    assert summary["latency_ms_p50"] == pytest.approx(99.5, abs=1)
    assert summary["latency_ms_p95"] == pytest.approx(144, abs=1)
    assert summary["errors"] == 0


def test_a_backlog_shows_as_latency_that_grows() -> None:
    run = LiveRun(warmup=0.0)
    run.samples = [(float(t), 100.0, 0.0) for t in range(300)]
    run.latencies = [(float(t), 40.0 + 10.0 * t) for t in range(300)]  # each frame waits longer
    summary = run.summary()
    assert summary["latency_ms_p95_last_minute"] > 4 * summary["latency_ms_p95_first_minute"]


def test_no_detections_is_an_error_not_a_zero() -> None:
    with pytest.raises(ValueError, match="no samples"):
        LiveRun().summary()
