"""The world's camera: a pinhole looking straight down at the table, and what it sees of a scene in metres.

Frames (metres): the *table* frame has its origin on the table under the optical centre, x to the image's
right, y to its top (away from the camera's near edge), z up; the *optical* frame is ROS's (x right, y down,
z along the optical axis), CAMERA_HEIGHT_M above the table looking straight down: optical x = table x,
optical y = -table y, optical z = -table z. Intrinsics: fx = REF_FOCAL * width / 640, fy = REF_FOCAL *
height / 480, the principal point at the image centre, no distortion.

Each object is a prism standing on the table whose top face, at its height (CATEGORY_HEIGHTS times its size),
is the shape the renderer draws: today's renders are what this camera sees of the top faces. The
approximation: the sides a pinhole would see between a top's outline and the table are not drawn (that
ring shows the table), and shadows are shading, not geometry. The depth image is exact to the render: every
pixel an object's polygons fill, in drawing order (the front object last), is at the depth of its top,
every other pixel at the table's.
"""

from __future__ import annotations

import cv2
import numpy as np

from echogen_ros.domain.camera import Box3D, Pinhole
from echogen_ros.world import catalog
from echogen_ros.world.render import drawn_box, object_polygons
from echogen_ros.world.scene import Scene, SceneObject

OPTICAL_FRAME, TABLE_FRAME = "camera_optical", "table"
DEPTH_SCALE = 0.001  # metres per unit of a 16-bit depth image (millimetres, as RealSense drivers publish)
# camera_optical → table: a half turn about x, the optical centre CAMERA_HEIGHT_M above the table's origin
CAMERA_TO_TABLE = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, catalog.CAMERA_HEIGHT_M], [0.0, 0.0, 0.0, 1.0]]
)
CAMERA_TO_TABLE.setflags(write=False)
VIEW_EXTENT_M = catalog.REF_HEIGHT * catalog.CAMERA_HEIGHT_M / catalog.REF_FOCAL  # the table in view, top to bottom


def pinhole(width: int = catalog.REF_WIDTH, height: int = catalog.REF_HEIGHT) -> Pinhole:
    """The intrinsics of a width × height render (the same view at every size)."""
    sx, sy = width / catalog.REF_WIDTH, height / catalog.REF_HEIGHT
    return Pinhole(catalog.REF_FOCAL * sx, catalog.REF_FOCAL * sy, (width - 1) / 2, (height - 1) / 2, width, height)


def height_of(obj: SceneObject) -> float:
    """The object's height in metres: its category's, times its size (drawn width over the category's)."""
    x1, _, x2, _ = obj.drawn
    return catalog.CATEGORY_HEIGHTS[obj.category] * (x2 - x1) / catalog.CATEGORY_EXTENTS[obj.category][0]


def box3d(obj: SceneObject) -> Box3D:
    """The object's 3D box in the table frame: its whole top face (past the border where it is cut), down to
    the table."""
    top = catalog.CAMERA_HEIGHT_M - height_of(obj)
    seen = pinhole().box_at_depth(obj.drawn, top, catalog.CAMERA_HEIGHT_M, OPTICAL_FRAME)
    return seen.transformed(CAMERA_TO_TABLE, TABLE_FRAME)


def depth_image(scene: Scene, width: int = catalog.REF_WIDTH, height: int = catalog.REF_HEIGHT) -> np.ndarray:
    """(height, width) float32 metres along the optical axis, exact to `render(scene, width, height)`."""
    depth = np.full((height, width), catalog.CAMERA_HEIGHT_M, dtype=np.float32)
    for obj in scene.objects:
        top = catalog.CAMERA_HEIGHT_M - height_of(obj)
        for _, polygon in object_polygons(obj, drawn_box(obj, width, height)):
            cv2.fillPoly(depth, [polygon], top, lineType=cv2.LINE_8)
    return depth


def depth_units(depth: np.ndarray) -> np.ndarray:
    """Metres → uint16 units of DEPTH_SCALE (0: no reading, as depth drivers write)."""
    finite = np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.rint(finite / DEPTH_SCALE), 0, 65535).astype(np.uint16)


def camera_record(width: int, height: int) -> dict:
    """What an export says of the camera of a width × height image: K, camera_to_table, depth_scale."""
    return {
        "K": pinhole(width, height).k.tolist(),
        "camera_to_table": CAMERA_TO_TABLE.tolist(),
        "depth_scale": DEPTH_SCALE,
    }
