"""What the live benchmark measures, without ROS: a process's RSS and CPU from /proc, and the summary of a
run (latency percentiles, CPU use, RSS growth after warm-up, whether latency grew: a backlog)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from echogen_ros.perf import percentile

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def find_process(needle: str, exclude: int | None = None) -> int | None:
    """The pid of the newest process (the latest start time: pids wrap around) whose command line contains
    `needle` (Linux /proc), or None. A process caught between exec and setting up its arguments has an empty
    command line for that instant: callers that just started one wait for it (`wait_for_process`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), exclude):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if needle in cmdline:
                found.append((start_ticks(int(entry.name)), int(entry.name)))
        except OSError:  # gone meanwhile
            continue
    return max(found)[1] if found else None


def wait_for_process(needle: str, timeout: float, exclude: int | None = None) -> int | None:
    """`find_process`, asked again every 50 ms for up to `timeout` seconds until it finds one."""
    deadline = time.monotonic() + timeout
    while True:
        pid = find_process(needle, exclude)
        if pid is not None or time.monotonic() >= deadline:
            return pid
        time.sleep(0.05)


def start_ticks(pid: int) -> int:
    """When process `pid` started, in clock ticks since boot (/proc/PID/stat field 22)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def process_sample(pid: int) -> tuple[float, float]:
    """(RSS in MiB, CPU seconds used so far: user + system) of process `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15 of stat)
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return rss_pages * PAGE / 2**20, cpu


@dataclass
class LiveRun:
    """Samples of one run: (time, latency ms) per detection array, (time, RSS MiB, CPU s) per second."""

    warmup: float = 60.0  # seconds ignored for RSS growth and latency drift
    latencies: list[tuple[float, float]] = field(default_factory=list)
    samples: list[tuple[float, float, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """Latency p50/p95 (ms), outputs per second, CPU (% of one core), RSS after warm-up and at the end
        (MiB, growth %), and the p95 latency of the first and last minute after warm-up (a backlog grows it)."""
        if len(self.samples) < 2 or not self.latencies:
            raise ValueError("no samples: was the node publishing detections?")
        start, end = self.samples[0][0], self.samples[-1][0]
        settled = [s for s in self.samples if s[0] - start >= self.warmup] or self.samples[-2:]
        lat = [ms for t, ms in self.latencies if t - start >= min(self.warmup, (end - start) / 2)]
        first = [ms for t, ms in self.latencies if 0 <= t - settled[0][0] < 60]
        last = [ms for t, ms in self.latencies if end - t < 60]
        rss_start, rss_end = settled[0][1], self.samples[-1][1]
        return {
            "seconds": round(end - start, 1),
            "detections": len(self.latencies),
            "detections_per_s": round(len(self.latencies) / (end - start), 2),
            "latency_ms_p50": round(percentile(lat, 50), 1),
            "latency_ms_p95": round(percentile(lat, 95), 1),
            "latency_ms_p95_first_minute": round(percentile(first or lat, 95), 1),
            "latency_ms_p95_last_minute": round(percentile(last or lat, 95), 1),
            "cpu_percent": round(100 * (self.samples[-1][2] - self.samples[0][2]) / (end - start), 1),
            "rss_mib_after_warmup": round(rss_start, 1),
            "rss_mib_end": round(rss_end, 1),
            "rss_growth_percent": round(100 * (rss_end - rss_start) / rss_start, 2),
            "errors": len(self.errors),
        }
