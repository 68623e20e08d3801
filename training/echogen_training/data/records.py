"""The one record type every source yields, and the world source (on the fly, seeded, resumable)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from echogen_ros.world import catalog
from echogen_ros.world.dataset import world_sample
from echogen_ros.world.scene import SceneConfig

Box = tuple[float, float, float, float]  # pixels of `image`, x2/y2 exclusive


@dataclass
class Record:
    """One image with what both tasks need. `load_image` defers decoding (real datasets are large)."""

    load_image: Callable[[], np.ndarray]  # → RGB uint8 (H, W, 3)
    width: int
    height: int
    caption: str
    objects: list[tuple[str, Box]]  # layout: label ("red cup") and box, for L2I
    refs: list[tuple[str, Box]]  # referring expressions and their boxes, for I2L
    absent: list[str] = field(default_factory=list)  # expressions that name no object of the image (no-target)
    absent_kinds: list[str] = field(default_factory=list)  # their kinds (world.language.ABSENT_KINDS), when known


class RecordStream:
    """An endless, seeded, resumable stream of records for one rank.

    Position p of rank r reads global item p * world + r; a finite source of n records is read in a fresh
    seeded permutation each epoch. `position` is all that exact resume needs.
    """

    def __init__(self, size: int, make: Callable[[int], Record], seed: int, rank: int = 0, world: int = 1):
        self.size, self.make, self.seed, self.rank, self.world = size, make, seed, rank, world
        self.position = 0

    def index(self, position: int) -> int:
        item = position * self.world + self.rank
        if self.size <= 0:
            return item
        epoch, offset = divmod(item, self.size)
        return int(np.random.default_rng([self.seed, epoch]).permutation(self.size)[offset])

    def __iter__(self) -> Iterator[Record]:
        return self

    def __next__(self) -> Record:
        record = self.make(self.index(self.position))
        self.position += 1
        return record

    def take(self, count: int) -> list[Record]:
        return [next(self) for _ in range(count)]


def layout_label(colour: str, category: str, rng: np.random.Generator) -> str:
    """How layouts name objects: "red cup", sometimes "the red cup" (planners write the latter)."""
    return f"the {colour} {category}" if rng.random() < 0.5 else f"{colour} {category}"


def world_record(seed: int, index: int, split: str, config: SceneConfig, scales: tuple[float, ...]) -> Record:
    sample = world_sample(seed, index, split, config)
    rng = np.random.default_rng([seed, 7, index])
    scale = scales[int(rng.integers(len(scales)))] if scales else 1.0
    width, height = int(round(catalog.REF_WIDTH * scale)), int(round(catalog.REF_HEIGHT * scale))
    boxes = [tuple(float(v) for v in b) for b in sample.boxes(width, height)]
    objs = sample.scene.objects
    return Record(
        load_image=lambda: sample.image(width, height),
        width=width,
        height=height,
        caption=sample.caption,
        objects=[(layout_label(o.colour, o.category, rng), b) for o, b in zip(objs, boxes)],
        refs=[(e.text, boxes[e.target]) for e in sample.expressions],
        absent=[e.text for e in sample.absent],
        absent_kinds=[e.kind for e in sample.absent],
    )


def world_stream(
    seed: int,
    split: str,
    count: int,
    min_objects: int,
    max_objects: int,
    scales: tuple[float, ...],
    rank: int = 0,
    world: int = 1,
    scale_range: tuple[float, float] = (1.0, 1.0),
    border_cut: float = 0.0,
) -> RecordStream:
    config = SceneConfig(min_objects=min_objects, max_objects=max_objects, scale_range=tuple(scale_range),
                         border_cut=border_cut)  # fmt: skip
    return RecordStream(count, lambda i: world_record(seed, i, split, config, scales), seed, rank, world)


def list_stream(records: list[Record], seed: int, rank: int = 0, world: int = 1) -> RecordStream:
    if not records:
        raise ValueError("the dataset has no usable records")
    return RecordStream(len(records), records.__getitem__, seed, rank, world)
