"""Seeded sampling of tabletop scenes: which objects, where, and how the table looks.

A scene is pure data in reference pixels (640×480); `render` turns it into an image of any size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from echogen_ros.world import catalog

Box = tuple[float, float, float, float]  # x1, y1, x2, y2
MIN_SCALE, MAX_SCALE = 0.25, 2.0  # a scale range's bounds: from an 11 px ball to a 330 px large plate
# the most of an object the border may cut: every shape keeps the extremes of its other axis in the frame, so
# its visible pixels still span exactly its (cut) box
MAX_BORDER_CUT = 0.4


@dataclass(frozen=True)
class SceneObject:
    category: str
    colour: str
    size: str  # "small" | "large"
    box: Box  # reference pixels, x2/y2 exclusive; the visible part when the image border cuts the object
    shade: tuple[int, int, int]  # per-object colour jitter, added to the colour's RGB
    extent: Box | None = None  # the whole object when the image border cuts it (None: `box` is all of it)

    @property
    def label(self) -> str:
        """How a layout names it: colour and category ("red cup")."""
        return f"{self.colour} {self.category}"

    @property
    def drawn(self) -> Box:
        """The box the object's shape is drawn into: all of it, beyond the image border where it is cut."""
        return self.extent or self.box

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    @property
    def center(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


@dataclass(frozen=True)
class SceneStyle:
    table: str
    lighting: tuple[float, ...]  # 3×3 gains, row-major, smoothly interpolated over the image
    noise: float  # standard deviation of sensor noise, in grey levels
    noise_offset: tuple[int, int]  # where this scene reads the shared noise tile
    shadow: tuple[float, float]  # shadow offset (dx, dy) as a fraction of object size


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]
    style: SceneStyle


@dataclass(frozen=True)
class SceneConfig:
    min_objects: int = 2
    max_objects: int = 8
    occlusion: float = 0.0  # largest allowed fraction of the smaller box covered by another box
    gap: float = 10.0  # free space between boxes when occlusion is 0 (reference pixels)
    margin: float = 8.0  # free border around the image (reference pixels)
    heldout: bool = False  # True: the held-out split (contains held-out colour×category pairs)
    scale_range: tuple[float, float] = (1.0, 1.0)  # every object's size times a uniform draw from this range
    border_cut: float = 0.0  # largest fraction of an object's width (height) the left/right (bottom) border may cut

    def __post_init__(self) -> None:
        if not 1 <= self.min_objects <= self.max_objects <= 12:
            raise ValueError(f"need 1 <= min_objects <= max_objects <= 12, got {self.min_objects}..{self.max_objects}")
        if not 0.0 <= self.occlusion < 0.5:
            raise ValueError(f"occlusion must be in [0, 0.5), got {self.occlusion}")
        lo, hi = self.scale_range
        object.__setattr__(self, "scale_range", (float(lo), float(hi)))  # a list from YAML or JSON compares alike
        if not MIN_SCALE <= lo <= hi <= MAX_SCALE:
            raise ValueError(f"scale_range must be lo <= hi within [{MIN_SCALE}, {MAX_SCALE}], got {lo}..{hi}")
        if not 0.0 <= self.border_cut <= MAX_BORDER_CUT:
            raise ValueError(f"border_cut must be in [0, {MAX_BORDER_CUT}], got {self.border_cut}")


# The widest world a frame may show: objects at any size from × 0.5 to × 1.6 of the catalogue's, cut by the
# border up to 30 %, up to 12 of them. The tools that fit what a model reports (its calibration,
# its domain check) draw half their scenes from it, half from the default world.
ANY_SIZE = SceneConfig(max_objects=12, scale_range=(0.5, 1.6), border_cut=0.3)


FITTING_WORLD = "half default, half any size (world.scene.scene_config)"  # how fitting tools record the draw


def scene_config(index: int) -> SceneConfig:
    """The default world for even scene indices, ANY_SIZE for odd ones: the fitting tools' draw."""
    return ANY_SIZE if index % 2 else SceneConfig()


def allowed_pairs(heldout: bool) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(pairs any object may use, pairs of which a held-out scene must contain one)."""
    every = [(c, k) for k in catalog.CATEGORIES for c in catalog.COLOURS]
    held = sorted(catalog.HELDOUT_PAIRS)
    if heldout:
        return every, held
    return [p for p in every if p not in catalog.HELDOUT_PAIRS], []


def sample_scene(rng: np.random.Generator, config: SceneConfig) -> Scene:
    """Draw one scene; objects never leave the frame and respect the gap/occlusion rule."""
    pool, required = allowed_pairs(config.heldout)
    for _ in range(100):
        count = int(rng.integers(config.min_objects, config.max_objects + 1))
        objects: list[SceneObject] = []
        for i in range(count * 4):
            if len(objects) == count:
                break
            pairs = required if (required and i == 0) else pool
            colour, category = pairs[int(rng.integers(len(pairs)))]
            candidate = _sample_object(rng, colour, category, config)
            if candidate is not None and _fits(candidate.box, [o.box for o in objects], config):
                objects.append(candidate)
        if len(objects) >= config.min_objects and (not required or _has_required(objects, required)):
            objects.sort(key=lambda o: (o.box[3], o.box[0]))  # back to front: drawing order
            return Scene(tuple(objects), _sample_style(rng))
    raise ValueError(f"could not place {config.min_objects} objects without overlap; lower --min-objects")


def _has_required(objects: list[SceneObject], required: list[tuple[str, str]]) -> bool:
    return any((o.colour, o.category) in required for o in objects)


def _sample_object(rng: np.random.Generator, colour: str, category: str, config: SceneConfig) -> SceneObject | None:
    size = "large" if rng.random() < 0.35 else "small"
    scale = catalog.SIZES[size] * float(rng.uniform(0.92, 1.08))
    if config.scale_range != (1.0, 1.0):  # no draw at the default: every scene stays as it was
        scale *= float(rng.uniform(*config.scale_range))
    w, h = (e * scale for e in catalog.CATEGORY_EXTENTS[category])
    if config.border_cut:
        return _sample_cut_object(rng, colour, category, size, w, h, config)
    m = config.margin
    x_hi, y_hi = catalog.REF_WIDTH - m - w, catalog.REF_HEIGHT - m - h
    if x_hi <= m or y_hi <= m:
        return None
    x1, y1 = float(rng.uniform(m, x_hi)), float(rng.uniform(m, y_hi))
    shade = tuple(int(v) for v in rng.integers(-14, 15, size=3))
    return SceneObject(category, colour, size, (x1, y1, x1 + w, y1 + h), shade)


def _sample_cut_object(
    rng: np.random.Generator, colour: str, category: str, size: str, w: float, h: float, config: SceneConfig
) -> SceneObject | None:
    """An object that may stand past the left, right or bottom border by up to `border_cut` of its size (the
    top stays free: a camera looking down at a table sees its near edge at the bottom); `box` is what is in
    the frame, `extent` the whole object when the border cuts it."""
    reach_x, reach_y, m = config.border_cut * w, config.border_cut * h, config.margin
    x_hi, y_hi = catalog.REF_WIDTH + reach_x - w, catalog.REF_HEIGHT + reach_y - h
    if x_hi <= -reach_x or y_hi <= m:
        return None
    x1, y1 = float(rng.uniform(-reach_x, x_hi)), float(rng.uniform(m, y_hi))
    shade = tuple(int(v) for v in rng.integers(-14, 15, size=3))
    extent = (x1, y1, x1 + w, y1 + h)
    box = (max(x1, 0.0), y1, min(x1 + w, float(catalog.REF_WIDTH)), min(y1 + h, float(catalog.REF_HEIGHT)))
    return SceneObject(category, colour, size, box, shade, extent if box != extent else None)


def _fits(box: Box, others: list[Box], config: SceneConfig) -> bool:
    for other in others:
        if config.occlusion == 0.0:
            g = config.gap
            apart = box[2] + g <= other[0] or other[2] + g <= box[0] or box[3] + g <= other[1] or other[3] + g <= box[1]
            if not apart:
                return False
        else:
            inter = _intersection(box, other)
            smaller = min(_area(box), _area(other))
            if inter > config.occlusion * smaller:
                return False
    return True


def _area(b: Box) -> float:
    return (b[2] - b[0]) * (b[3] - b[1])


def _intersection(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def _sample_style(rng: np.random.Generator) -> SceneStyle:
    tables = list(catalog.TABLES)
    lighting = tuple(float(v) for v in rng.uniform(0.78, 1.12, size=9))
    return SceneStyle(
        table=tables[int(rng.integers(len(tables)))],
        lighting=lighting,
        noise=float(rng.uniform(1.5, 7.0)),
        noise_offset=(int(rng.integers(0, 1 << 16)), int(rng.integers(0, 1 << 16))),
        shadow=(float(rng.uniform(-0.12, 0.12)), float(rng.uniform(0.04, 0.14))),
    )
