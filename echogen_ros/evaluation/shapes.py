"""Which of the world's categories a found region looks like: its silhouette and its interior tones compared
with each category as the world's renderer draws it into the region's box (`world.render.object_polygons`).

Two measures per category, both needed:
- silhouette: IoU of the region's mask with the category's outline drawn into the region's box (a cup's
  handle, a bottle's shoulders, a block's cut corners, a banana's arc, an ellipse's round edge);
- structure: how much of the category's interior contrast the region shows: a box's shaded top band and pale
  stripe, a plate's pale inner ring, a bowl's shaded inside, a ball's highlight, a bottle's dark cap and pale
  label, a block's pale and shaded faces, a banana's dark tips, a cup's rim. Each part's mean colour is
  compared with the body's, against the contrast the renderer gives that part in the region's colour
  (lighting is one gain fitted over the region). A flat fill shows none of it; where a colour leaves a
  category no visible contrast (a white ball's highlight), structure cannot tell.
A category is accepted on those two alone; of the accepted, the best is chosen by silhouette × structure ×
how near the box's proportions are to the category's (a white ball and a white plate differ only there).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import cv2
import numpy as np

from echogen_ros.world import catalog
from echogen_ros.world.render import object_polygons
from echogen_ros.world.scene import SceneObject

MIN_SILHOUETTE = 0.80  # IoU below which a region is not that category's outline
MIN_STRUCTURE = 0.30  # share of the interior contrast a region must show: flat fills show ~0, renders >= 0.6
MIN_CONTRAST = 18.0  # RGB distance from the body below which a part's contrast is too faint to count
MIN_PART_PIXELS = 6  # parts smaller than this in the region say nothing
NEAR_BLACK = 80  # parts this dark (a bottle's cap, a banana's tips) look like shadow to the foreground mask
UNSEEN_STRUCTURE = MIN_STRUCTURE  # how a category whose interior this colour hides ranks (a white ball)


@dataclass(frozen=True)
class Match:
    category: str
    silhouette: float
    structure: float | None  # None: this colour leaves the category no visible interior contrast
    box: tuple[int, int, int, int]  # the whole object in the region's crop (beyond it where dark parts were missed)

    @property
    def proportion(self) -> float:
        """The box's aspect ratio against the category's (1: the same): ranks, never accepts."""
        x1, y1, x2, y2 = self.box
        width, height = catalog.CATEGORY_EXTENTS[self.category]
        ratio = (x2 - x1) / max(y2 - y1, 1) / (width / height)
        return min(ratio, 1 / ratio)

    @property
    def score(self) -> float:
        shown = UNSEEN_STRUCTURE if self.structure is None else self.structure
        return self.silhouette * shown * self.proportion

    @property
    def accepted(self) -> bool:
        return self.silhouette >= MIN_SILHOUETTE and (self.structure is None or self.structure >= MIN_STRUCTURE)


@lru_cache(maxsize=4096)
def drawn(category: str, colour: str, width: int, height: int) -> tuple[np.ndarray, tuple]:
    """The category drawn by the world's renderer into a width × height box: (uint8 map of tone index, 255
    outside the object; the tones' RGB, body first)."""
    obj = SceneObject(category, colour, "small", (0.0, 0.0, float(width), float(height)), (0, 0, 0))
    tones = [tuple(catalog.COLOURS[colour])]
    canvas = np.full((height, width), 255, dtype=np.uint8)
    for rgb, polygon in object_polygons(obj, (0, 0, width, height)):
        if rgb not in tones:
            tones.append(rgb)
        cv2.fillPoly(canvas, [polygon], tones.index(rgb), lineType=cv2.LINE_8)
    canvas.setflags(write=False)
    return canvas, tuple(tones)


def structure(pixels: np.ndarray, region: np.ndarray, tone_map: np.ndarray, tones: tuple) -> float | None:
    """Share (0..1) of the drawn tones' contrast to the body that the region's pixels show, weighted by each
    part's size (its pixels a pixel away from its edge); None when no part has a visible contrast."""
    kernel = np.ones((3, 3), np.uint8)  # each part less its edge: a pixel of a neighbour's tone says nothing
    parts = [region & cv2.erode((tone_map == k).astype(np.uint8), kernel).astype(bool) for k in range(len(tones))]
    counts = np.array([int(p.sum()) for p in parts])
    if counts[0] < MIN_PART_PIXELS:
        return 0.0
    seen = np.array([pixels[p].mean(axis=0) if n else np.zeros(3) for p, n in zip(parts, counts)])
    drawn_rgb = np.asarray(tones, dtype=np.float64)
    gain = float((counts[:, None] * seen * drawn_rgb).sum() / max((counts[:, None] * drawn_rgb**2).sum(), 1e-9))
    shown, weight = 0.0, 0.0
    for k in range(1, len(tones)):
        expected = gain * (drawn_rgb[k] - drawn_rgb[0])
        size = float(np.linalg.norm(expected))
        if counts[k] < MIN_PART_PIXELS or size < MIN_CONTRAST:
            continue
        ratio = float((seen[k] - seen[0]) @ expected) / size**2
        shown += counts[k] * max(0.0, 1.0 - abs(1.0 - ratio))
        weight += counts[k]
    return shown / weight if weight else None


@cache
def without_dark(category: str) -> tuple[float, float, float, float]:
    """The unit box (u0, v0, u1, v1) of the category's parts that are not near black, less slivers thinner than
    2 % of the box (the foreground mask's opening removes them)."""
    tone_map, tones = drawn(category, "white", 400, 400)
    dark = [k for k, rgb in enumerate(tones) if max(rgb) < NEAR_BLACK]
    light = ((tone_map != 255) & ~np.isin(tone_map, dark)).astype(np.uint8)
    ys, xs = np.nonzero(cv2.morphologyEx(light, cv2.MORPH_OPEN, np.ones((9, 9), np.uint8)))
    return xs.min() / 400, ys.min() / 400, (xs.max() + 1) / 400, (ys.max() + 1) / 400


def match(pixels: np.ndarray, region: np.ndarray, colour: str, category: str) -> Match:
    """How well a region (bool mask cropped to its box; `pixels` the RGB crop) looks like `category` drawn in
    `colour`: the better of the region as the whole object and as the object without its near-black parts."""
    height, width = region.shape
    boxes = {(0, 0, width, height)}
    u0, v0, u1, v1 = without_dark(category)
    full_w, full_h = round(width / (u1 - u0)), round(height / (v1 - v0))
    left, top = round(u0 * full_w), round(v0 * full_h)
    full_w, full_h = max(full_w, left + width), max(full_h, top + height)  # rounding never cuts the region
    boxes.add((-left, -top, full_w - left, full_h - top))
    return max((_match_in(pixels, region, colour, category, box) for box in boxes), key=lambda m: m.score)


def _match_in(pixels: np.ndarray, region: np.ndarray, colour: str, category: str, box: tuple) -> Match:
    """`match` with the category drawn into `box` (crop coordinates, reaching past the crop or not)."""
    height, width = region.shape
    x1, y1, x2, y2 = box
    whole, tones = drawn(category, colour, x2 - x1, y2 - y1)
    tone_map = whole[-y1 : height - y1, -x1 : width - x1]
    dark = [k for k, rgb in enumerate(tones) if max(rgb) < NEAR_BLACK]
    outline = (tone_map != 255) & ~np.isin(tone_map, dark) if box != (0, 0, width, height) else tone_map != 255
    union = int((outline | region).sum())
    silhouette = int((outline & region).sum()) / union if union else 0.0
    return Match(category, silhouette, structure(pixels.astype(np.float64), region, tone_map, tones), box)


def best_match(pixels: np.ndarray, region: np.ndarray, colour: str) -> Match | None:
    """The accepted category that fits the region best, or None when no category's shape fits."""
    found = [m for m in (match(pixels, region, colour, c) for c in catalog.CATEGORIES) if m.accepted]
    return max(found, key=lambda m: m.score, default=None)
