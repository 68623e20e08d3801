"""Rendering scenes to RGB images at any resolution, with exact pixel boxes.

Pipeline per frame (all OpenCV on uint8 except one float lighting map): cached table texture →
filled object polygons → one multiply by (smooth lighting × drop shadows) → sensor noise from a cached
tile. Polygons are drawn without anti-aliasing, so an object's pixels span exactly its pixel box.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from echogen_ros.world import catalog
from echogen_ros.world.scene import Scene, SceneObject, SceneStyle
from echogen_ros.world.shapes import SHAPES

PixelBox = tuple[int, int, int, int]  # x1, y1, x2, y2; x2/y2 exclusive
_DARK = np.array([58.0, 46.0, 40.0])
_NOISE_PAD = 64


def pixel_box(obj: SceneObject, width: int, height: int) -> PixelBox:
    """The object's box in pixels of a width×height frame (identical to its rendered extent)."""
    return _in_pixels(obj.box, width, height, clip=True)


def drawn_box(obj: SceneObject, width: int, height: int) -> PixelBox:
    """The pixel box the object's shape is drawn into: its pixel box, or all of it, past the frame, where the
    image border cuts it (the frame then clips the drawing to the pixel box)."""
    return pixel_box(obj, width, height) if obj.extent is None else _in_pixels(obj.extent, width, height, clip=False)


def _in_pixels(box: tuple[float, ...], width: int, height: int, clip: bool) -> PixelBox:
    sx, sy = width / catalog.REF_WIDTH, height / catalog.REF_HEIGHT
    x1, y1 = int(round(box[0] * sx)), int(round(box[1] * sy))
    x2, y2 = max(x1 + 2, int(round(box[2] * sx))), max(y1 + 2, int(round(box[3] * sy)))
    return (x1, y1, min(width, x2), min(height, y2)) if clip else (x1, y1, x2, y2)


def object_polygons(obj: SceneObject, box: PixelBox) -> list[tuple[tuple[int, int, int], np.ndarray]]:
    """(RGB colour, int32 polygon) for each part of `obj` drawn into `box`."""
    x1, y1, x2, y2 = box
    scale = np.array([x2 - 1 - x1, y2 - 1 - y1], dtype=np.float64)
    origin = np.array([x1, y1], dtype=np.float64)
    tones = _tones(obj)
    return [(tones[tone], np.rint(origin + unit * scale).astype(np.int32)) for tone, unit in SHAPES[obj.category]]


def render(scene: Scene, width: int = catalog.REF_WIDTH, height: int = catalog.REF_HEIGHT) -> np.ndarray:
    """Render `scene` as an (height, width, 3) RGB uint8 image."""
    image = _table(scene.style.table, width, height).copy()
    shading = np.full((height, width), 255, dtype=np.uint8)
    boxes = [drawn_box(o, width, height) for o in scene.objects]
    for box in boxes:
        _draw_shadow(shading, box, scene.style.shadow)
    for obj, box in zip(scene.objects, boxes):
        for colour, polygon in object_polygons(obj, box):
            cv2.fillPoly(image, [polygon], colour, lineType=cv2.LINE_8)
            cv2.fillPoly(shading, [polygon], 255, lineType=cv2.LINE_8)
    gains = np.asarray(scene.style.lighting, dtype=np.float32).reshape(3, 3)
    light = cv2.resize(gains, (width, height), interpolation=cv2.INTER_LINEAR)
    light = cv2.multiply(light, shading, scale=1.0 / 255.0, dtype=cv2.CV_32F)
    image = cv2.multiply(image, cv2.merge([light, light, light]), dtype=cv2.CV_8U)
    return _add_noise(image, scene.style.noise, scene.style.noise_offset)


def _tones(obj: SceneObject) -> dict[str, tuple[int, int, int]]:
    body = np.clip(np.asarray(catalog.COLOURS[obj.colour], dtype=np.float64) + obj.shade, 0, 255)
    tones = {"body": body, "shade": body * 0.68, "light": body + (255.0 - body) * 0.45, "dark": _DARK}
    return {name: tuple(int(c) for c in np.rint(rgb)) for name, rgb in tones.items()}


def _draw_shadow(shading: np.ndarray, box: PixelBox, offset: tuple[float, float]) -> None:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    center = (int(round((x1 + x2) / 2 + offset[0] * w)), int(round(y2 - 0.12 * h + offset[1] * h)))
    axes = (max(1, int(round(w * 0.55))), max(1, int(round(h * 0.22))))
    cv2.ellipse(shading, center, axes, 0, 0, 360, 150, thickness=-1, lineType=cv2.LINE_8)


@lru_cache(maxsize=16)
def _table(name: str, width: int, height: int) -> np.ndarray:
    """A wood-grain texture for table `name`, the same pattern (scaled) at every resolution."""
    rng = np.random.default_rng(sorted(catalog.TABLES).index(name))
    u = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    v = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    phase = rng.uniform(0, 2 * np.pi, size=3).astype(np.float32)
    grain = 0.55 * np.sin(2 * np.pi * (v * 23.0 + 0.35 * np.sin(2 * np.pi * u * 1.7 + phase[0])) + phase[1])
    grain += 0.25 * np.sin(2 * np.pi * (v * 61.0 + 0.15 * np.sin(2 * np.pi * u * 4.3 + phase[2])))
    coarse = cv2.resize(
        rng.normal(0, 1, size=(12, 16)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
    )
    factor = 1.0 + 0.07 * grain + 0.05 * coarse
    base = np.asarray(catalog.TABLES[name], dtype=np.float32)
    texture = np.clip(factor[..., None] * base, 0, 255).astype(np.uint8)
    texture.setflags(write=False)
    return texture


@lru_cache(maxsize=8)
def _noise_tile(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(12345)
    tile = np.clip(rng.normal(128.0, 32.0, size=(height + _NOISE_PAD, width + _NOISE_PAD, 3)), 0, 255)
    tile = tile.astype(np.uint8)
    tile.setflags(write=False)
    return tile


def _add_noise(image: np.ndarray, sigma: float, offset: tuple[int, int]) -> np.ndarray:
    height, width = image.shape[:2]
    oy, ox = offset[0] % _NOISE_PAD, offset[1] % _NOISE_PAD
    noise = _noise_tile(width, height)[oy : oy + height, ox : ox + width]
    weight = sigma / 32.0
    return cv2.addWeighted(image, 1.0, np.ascontiguousarray(noise), weight, -128.0 * weight)


def empty_table(index: int, width: int = catalog.REF_WIDTH, height: int = catalog.REF_HEIGHT) -> np.ndarray:
    """A table with nothing on it, as a scene renders it (texture, even light, sensor noise): the catalogue's
    tables in turn by `index`, each index its own noise."""
    tables = list(catalog.TABLES)
    style = SceneStyle(tables[index % len(tables)], (1.0,) * 9, 3.0, (7 * index % 4096, 13 * index % 4096), (0.0, 0.1))
    return render(Scene((), style), width, height)
