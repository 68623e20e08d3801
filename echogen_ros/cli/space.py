"""`echogen ground --depth D --camera CAMERA.json`: each detection's 3D box, measured as the node measures it.

CAMERA.json is an image's `camera` of an `echogen world` export: {"K": 3×3, "camera_to_table": 4×4 (optional:
without it boxes stay in the camera's optical frame), "depth_scale": metres per unit of D (default 0.001)}.
D is a 16-bit PNG registered to the image (aligned depth; 0: no reading).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from echogen_ros.domain.camera import Pinhole
from echogen_ros.runtime.images import decode
from echogen_ros.runtime.space import DepthRange, measure

OPTICAL_FRAME, TABLE_FRAME = "camera_optical", "table"  # the frames an `echogen world` camera names


def add_depth_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--depth", type=Path, default=None,
                        help="16-bit depth PNG registered to --image (with --camera): 3D boxes")  # fmt: skip
    parser.add_argument("--camera", type=Path, default=None,
                        help='JSON {"K": 3x3, "camera_to_table": 4x4 (optional), "depth_scale": 0.001}')  # fmt: skip


class Measured:
    """The depth, camera and table transform of one `ground` call; `box3d(box)` for each detection."""

    def __init__(self, depth_path: Path, camera_path: Path, width: int, height: int) -> None:
        camera = read_camera(camera_path)
        self.camera = Pinhole.from_k(camera["K"], width, height)
        self.to_table = None if camera.get("camera_to_table") is None else _matrix(camera["camera_to_table"])
        self.depth = read_depth(depth_path, float(camera.get("depth_scale", 0.001)))

    def box3d(self, box) -> dict:
        """{center, size, frame} in the table frame (else the optical frame), or {reason} when depth cannot say."""
        placed = measure(box, self.depth, self.camera, DepthRange(), OPTICAL_FRAME)
        if placed.box is None:
            return {"reason": placed.reason}
        box3d = placed.box if self.to_table is None else placed.box.transformed(self.to_table, TABLE_FRAME)
        return box3d.as_dict()


def measured(args: argparse.Namespace, image: np.ndarray) -> Measured | None:
    """What --depth and --camera give (None without them); ValueError when only one is given or either is bad."""
    if (args.depth is None) != (args.camera is None):
        raise ValueError("--depth and --camera go together: the depth image and the camera that took it")
    if args.depth is None:
        return None
    return Measured(args.depth, args.camera, image.shape[1], image.shape[0])


def read_camera(path: Path) -> dict:
    if not path.is_file():
        raise ValueError(f"camera {path} does not exist")
    try:
        camera = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(camera, dict) or "K" not in camera:
        raise ValueError(f"{path} needs a camera object with K (3x3), as an `echogen world` image's camera")
    scale = camera.get("depth_scale", 0.001)
    if not isinstance(scale, (int, float)) or not 0 < scale < 1e3:
        raise ValueError(f"{path}: depth_scale must be metres per depth unit (> 0), got {scale!r}")
    return camera


def _matrix(rows) -> np.ndarray:
    try:
        matrix = np.asarray(rows, dtype=np.float64).reshape(4, 4)
    except (TypeError, ValueError):
        raise ValueError(f"camera_to_table must be a 4x4 matrix, got {rows!r}") from None
    if not np.isfinite(matrix).all() or not np.allclose(matrix[3], [0, 0, 0, 1]):
        raise ValueError("camera_to_table must be a finite 4x4 rigid transform with last row [0, 0, 0, 1]")
    return matrix


def read_depth(path: Path, scale: float) -> np.ndarray:
    """A 16-bit depth PNG as (H, W) float32 metres, NaN where it holds 0."""
    if not path.is_file():
        raise ValueError(f"depth {path} does not exist")
    units = decode(path.read_bytes(), f"depth {path}", cv2.IMREAD_UNCHANGED)
    if units.dtype != np.uint16 or units.ndim != 2:
        got = f"{units.dtype} {units.shape}"
        raise ValueError(f"depth {path} must be a one-channel 16-bit PNG (depth units), got {got}")
    metres = units.astype(np.float32) * np.float32(scale)
    metres[units == 0] = np.nan
    return metres
