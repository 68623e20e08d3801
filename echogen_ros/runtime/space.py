"""Where a grounded box is in space, from a depth image registered to the colour camera (ROS-free).

The depths of a region group into surfaces (sorted depths more than SURFACE_GAP apart split). The surface an
object stands on is the farthest one around its box (a ring outside it); its top is the largest surface in
the box nearer than that. Its 3D box is the image box back-projected at the top's depth, reaching back to
the surface below (`Pinhole.box_at_depth`): exact for an object seen from straight above, whose outline is
its top's; seen obliquely, the box's far face is where the top's outline meets the surface below. A median
per surface keeps noise, edges and flying pixels out. Too few readings, no surface around the box or nothing
standing out of it give no box and the reason: never a 3D box that the depth does not support. A goal box
stands on the nearest surface in it (the table, or the top of what the object is put on), the moving object's
own pixels left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from echogen_ros.domain.camera import Box3D, Pinhole

SURFACE_GAP = 0.005  # metres between sorted depths that split surfaces: above a depth camera's noise at 1 m
# (~2 mm), below the flattest object's height (a plate, 1 cm at half size)
MIN_VALID = 0.5  # the share of the box's pixels that must hold a reading in range
MIN_SURFACE = 0.1  # the share of a region's readings a surface needs to count (edges and noise hold less)
RING = 0.25  # the ring read for the surface below: this share of the box's shorter side, at least 3 px


@dataclass(frozen=True)
class DepthRange:
    """Readings outside [near, far] metres are no readings (a sensor's blind zone and its noisy far end)."""

    near: float = 0.1
    far: float = 10.0


@dataclass(frozen=True)
class Placed:
    """A 3D box, or None and why there is none."""

    box: Box3D | None
    reason: str = ""


def measure(box: Sequence[float], depth: np.ndarray, camera: Pinhole, limits: DepthRange, frame: str = "") -> Placed:
    """The 3D box (in `frame`, the camera's optical frame) of the object an image box shows, from `depth`
    ((H, W) metres, NaN: none)."""
    problem = _mismatch(depth, camera)
    if problem:
        return Placed(None, problem)
    rows, cols = _pixels(box, depth.shape, pad=0)
    if rows.stop <= rows.start or cols.stop <= cols.start:
        return Placed(None, "the box is outside the depth image")
    inside = depth[rows, cols].ravel()
    values = _readings(inside, limits)
    if values.size < MIN_VALID * inside.size:
        share = values.size / inside.size
        return Placed(None, f"{share:.0%} of the box has depth in {limits.near:g}..{limits.far:g} m")
    below = _surface_below(box, depth, limits)
    if below is None:
        return Placed(None, "no surface around the box to stand on")
    standing = [s for s in _surfaces(values) if s[-1] < below - SURFACE_GAP]
    top = max(standing, key=len, default=None)
    if top is None or top.size < MIN_SURFACE * values.size:
        return Placed(None, "nothing in the box stands out of the surface around it")
    return Placed(camera.box_at_depth(box, float(np.median(top)), below, frame))


def surface_point(
    box: Sequence[float], height: float, depth: np.ndarray, camera: Pinhole, limits: DepthRange,
    leaving: Sequence[float] | None = None,
) -> tuple[np.ndarray | None, str]:  # fmt: skip
    """Where an object `height` metres tall, shown at image box `box`, would stand: on the nearest surface in
    the box (the highest thing under it: the table, or the top of what it is put on), the optical-frame point
    there under its top's centre (along the optical axis); or None and why. `leaving`: the image box of the
    object now, whose pixels are not what it will stand on (it moves away)."""
    problem = _mismatch(depth, camera)
    below = None if problem else _nearest_surface(box, depth, limits, leaving)
    if below is None:
        return None, problem or "no surface at the goal to stand on"
    u, v = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    point = camera.point(u, v, below - height)
    point[2] = below
    return point, ""


def _mismatch(depth: np.ndarray, camera: Pinhole) -> str:
    if depth.shape != (camera.height, camera.width):
        return (f"the depth image is {depth.shape[1]}x{depth.shape[0]}, the camera {camera.width}x{camera.height}: "
                "send depth registered to the colour camera (aligned depth)")  # fmt: skip
    return ""


def _pixels(box: Sequence[float], shape: tuple[int, ...], pad: float) -> tuple[slice, slice]:
    """The rows and columns whose pixel centres lie in the box (edge coordinates) grown by `pad` pixels."""
    x1, y1, x2, y2 = (float(b) for b in box)
    col0, col1 = int(np.floor(x1 - pad + 0.5)), int(np.floor(x2 + pad - 0.5)) + 1
    row0, row1 = int(np.floor(y1 - pad + 0.5)), int(np.floor(y2 + pad - 0.5)) + 1
    return slice(max(row0, 0), min(row1, shape[0])), slice(max(col0, 0), min(col1, shape[1]))


def _readings(values: np.ndarray, limits: DepthRange) -> np.ndarray:
    return values[np.isfinite(values) & (values >= limits.near) & (values <= limits.far)]


def _surfaces(values: np.ndarray) -> list[np.ndarray]:
    """The readings split into surfaces, nearest first (each sorted)."""
    ordered = np.sort(values)
    cuts = np.nonzero(np.diff(ordered) > SURFACE_GAP)[0] + 1
    return np.split(ordered, cuts)


def _surface_below(box: Sequence[float], depth: np.ndarray, limits: DepthRange) -> float | None:
    """The median depth of the farthest surface in a ring around the box holding at least MIN_SURFACE of the
    readings there (what the object stands on); None when there is none."""
    x1, y1, x2, y2 = (float(b) for b in box)
    pad = max(3.0, RING * min(x2 - x1, y2 - y1))
    rows, cols = _pixels(box, depth.shape, pad)
    region = depth[rows, cols].copy()
    inner_rows, inner_cols = _pixels(box, depth.shape, pad=0)
    region[inner_rows.start - rows.start : inner_rows.stop - rows.start,
           inner_cols.start - cols.start : inner_cols.stop - cols.start] = np.nan  # fmt: skip
    held = _held_surfaces(region.ravel(), limits)
    return float(np.median(held[-1])) if held else None


def _nearest_surface(
    box: Sequence[float], depth: np.ndarray, limits: DepthRange, leaving: Sequence[float] | None
) -> float | None:
    """The median depth of the nearest surface in the box (the pixels of `leaving` left out) holding at least
    MIN_SURFACE of its readings; None when there is none."""
    region = depth.copy()
    if leaving is not None:
        region[_pixels(leaving, depth.shape, pad=0)] = np.nan
    rows, cols = _pixels(box, depth.shape, pad=0)
    held = _held_surfaces(region[rows, cols].ravel(), limits)
    return float(np.median(held[0])) if held else None


def _held_surfaces(region: np.ndarray, limits: DepthRange) -> list[np.ndarray]:
    """The surfaces of a region's readings that hold at least MIN_SURFACE of them, nearest first."""
    values = _readings(region, limits)
    return [s for s in _surfaces(values) if s.size >= MIN_SURFACE * values.size] if values.size else []
