"""When to ground: on a new instruction, then every N frames or T seconds; only the latest frame."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


@dataclass
class Frame:
    rgb: np.ndarray
    header: object  # std_msgs/Header of the camera message
    received: float  # seconds, the caller's clock


class LatestFrame:
    """A one-slot mailbox: a new frame replaces an unprocessed one (never a backlog)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._fresh = False
        self.replaced = 0  # frames overwritten before anyone processed them

    def put(self, frame: Frame) -> None:
        with self._lock:
            if self._fresh:
                self.replaced += 1
            self._frame, self._fresh = frame, True

    def take(self) -> Frame | None:
        """The newest unprocessed frame, or None if nothing new arrived since the last take."""
        with self._lock:
            frame, fresh = self._frame, self._fresh
            self._fresh = False
            return frame if fresh else None

    def peek(self) -> Frame | None:
        """The newest frame, processed or not (for service calls that use 'the latest frame')."""
        with self._lock:
            return self._frame


class GroundingSchedule:
    """Ground on the first frame after an instruction arrives, then every `every_frames` frames or
    `every_seconds` seconds (whichever comes first); 0 disables that trigger."""

    def __init__(self, every_frames: int = 10, every_seconds: float = 1.0) -> None:
        self.set_period(every_frames, every_seconds)
        self._pending = False
        self._frames = 0
        self._last: float | None = None

    def set_period(self, every_frames: int, every_seconds: float) -> None:
        if every_frames < 0 or every_seconds < 0:
            raise ValueError("grounding period must be >= 0")
        self.every_frames, self.every_seconds = every_frames, every_seconds

    def instruction_arrived(self) -> None:
        self._pending = True

    def frame_arrived(self) -> None:
        self._frames += 1

    def due(self, now: float) -> bool:
        if self._pending:
            return True
        if self._last is None:
            return False
        by_frames = self.every_frames > 0 and self._frames >= self.every_frames
        by_time = self.every_seconds > 0 and now - self._last >= self.every_seconds
        return by_frames or by_time

    def grounded(self, now: float) -> None:
        self._pending, self._frames, self._last = False, 0, now
