"""The scene listing beside the grounding stream: every object of a frame (`ModelGrounder.scene_steps`), listed
at most every `scene_every_seconds`, one step (a few labels) at a time. A frame due to be grounded waits for one
step at most, never for a whole listing (about 1.1 s on 2 CPU cores)."""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass

from echogen_ros.model.layout import Detection
from echogen_ros.planning.grounders import NotFound
from echogen_ros.runtime.schedule import Frame


@dataclass(frozen=True)
class Listing:
    frame: Frame  # the frame listed (its header stamps the `scene` message)
    objects: list[Detection] | None  # None: the frame is out of the model's domain, nothing listed
    started: float  # seconds, the caller's clock
    ms: float  # time spent in its steps


class SceneListing:
    """One listing under way at a time, and the last one made."""

    def __init__(self) -> None:
        self.last: Listing | None = None
        self._job: tuple[Frame, Generator] | None = None
        self._spent = 0.0
        self._started: float | None = None

    @property
    def under_way(self) -> bool:
        return self._job is not None

    def due(self, now: float, every_seconds: float) -> bool:
        """No listing under way, and none started in the last `every_seconds` (0: one after another); a clock
        that went back (a bag played again) makes one due."""
        if self._job is not None:
            return False
        return self._started is None or now - self._started >= every_seconds or now < self._started

    def start(self, frame: Frame, steps: Generator[None, None, list[Detection] | None], now: float) -> None:
        self._job, self._spent, self._started = (frame, steps), 0.0, now

    def advance(self, whole: bool = False) -> Listing | None:
        """Run the listing's next step (`whole`: all of them); the listing once it is made, else None. An error
        of the model drops the listing under way and is raised."""
        if self._job is None:
            raise RuntimeError("no listing under way")
        frame, steps = self._job
        start = time.perf_counter()
        try:
            while True:
                next(steps)
                if not whole:
                    self._spent += time.perf_counter() - start
                    return None
        except StopIteration as done:
            objects = done.value
        except NotFound:  # out of domain: the grounding says why
            objects = None
        except BaseException:
            self._job = None
            raise
        self._job = None
        self.last = Listing(frame, objects, self._started, (self._spent + time.perf_counter() - start) * 1000)
        return self.last
