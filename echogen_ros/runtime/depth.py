"""Depth frames: sensor_msgs/Image depth (32FC1 metres, 16UC1 or mono16 millimetres) → metres, and each colour
frame paired with the depth frame nearest its stamp within a tolerance (approximate sync, as message_filters'
ApproximateTimeSynchronizer pairs by `slop`)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from echogen_ros.runtime.images import ImageError, pixels_of

# encoding → metres per unit (16-bit depth is millimetres, as RealSense and most drivers publish)
DEPTH_SCALES = {"32FC1": 1.0, "16UC1": 0.001, "mono16": 0.001}


def to_metres(msg) -> np.ndarray:
    """A depth image as (H, W) float32 metres; NaN where there is no reading (0, NaN, ±inf)."""
    encoding = str(msg.encoding)
    if encoding not in DEPTH_SCALES:
        raise ImageError(f"depth encoding {encoding!r} is not depth; send one of {', '.join(DEPTH_SCALES)}")
    pixels, _ = pixels_of(msg)
    metres = pixels[..., 0].astype(np.float32) * np.float32(DEPTH_SCALES[encoding])
    metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
    return metres


def seconds(header) -> float:
    return int(header.stamp.sec) + int(header.stamp.nanosec) * 1e-9


@dataclass(frozen=True)
class DepthFrame:
    metres: np.ndarray  # (H, W) float32, NaN: no reading
    header: object  # std_msgs/Header of the depth message


class DepthFrames:
    """The last few depth frames; `nearest(stamp)` pairs a colour frame with the one closest in time."""

    def __init__(self, keep: int = 10) -> None:
        self._frames: deque[DepthFrame] = deque(maxlen=keep)
        self._arrived = threading.Condition()

    def put(self, frame: DepthFrame) -> None:
        with self._arrived:
            self._frames.append(frame)
            self._arrived.notify_all()

    def nearest(self, stamp: float, tolerance: float, wait: float = 0.0) -> tuple[DepthFrame | None, str]:
        """(the depth frame nearest `stamp` within `tolerance` seconds, "") or (None, why there is none). With
        `wait`, up to that many seconds for one within the tolerance to arrive (a driver publishes a frame's
        depth just after its colour image), but only once some depth has arrived."""

        def within() -> bool:
            return any(abs(seconds(f.header) - stamp) <= tolerance for f in self._frames)

        with self._arrived:
            if wait > 0 and self._frames:
                self._arrived.wait_for(within, timeout=wait)
            frames = list(self._frames)
        if not frames:
            return None, "no depth frame received"
        best = min(frames, key=lambda f: abs(seconds(f.header) - stamp))
        offset = abs(seconds(best.header) - stamp)
        if offset > tolerance:
            return None, f"no depth frame within {tolerance:g} s of the colour frame (nearest {offset:.3f} s)"
        return best, ""
