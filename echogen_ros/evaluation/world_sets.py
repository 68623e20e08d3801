"""Evaluation on world scenes drawn in memory instead of read from an export: named held-out sets, and
bands of object scale (sizes the embedded model never saw: it was trained on two sizes, ×1 and ×1.45).

A held-out set used to make decisions is a validation set. `USED_HELDOUT` has been (docs/benchmarks.md
says where); `FRESH_HELDOUT` was drawn on 2026-12-05 and is only reported on: choose nothing by it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from echogen_ros.evaluation.run import measure
from echogen_ros.world.dataset import coco, world_samples
from echogen_ros.world.scene import SceneConfig


@dataclass(frozen=True)
class WorldSet:
    """`count` scenes of `split` drawn from `seed` with `config`, as `echogen world` would export them."""

    split: str
    seed: int
    count: int
    config: SceneConfig = field(default_factory=SceneConfig)

    def data(self) -> tuple[dict, Callable[[dict], np.ndarray]]:
        """(annotations.json's content, `image(info)` → the frame as RGB, rendered when asked)."""
        samples = list(world_samples(self.seed, self.count, self.split, self.config))
        return coco(samples, self.seed, self.split), lambda info: samples[info["id"] - 1].image()

    def describe(self) -> dict:
        return {"split": self.split, "seed": self.seed, "count": self.count,
                "scale_range": list(self.config.scale_range), "border_cut": self.config.border_cut}  # fmt: skip


USED_HELDOUT = WorldSet("heldout", 7, 200)  # the experiment log's held-out set: looked at in decisions
FRESH_HELDOUT = WorldSet("heldout", 20261205, 200)  # drawn for issue 34; report on it, tune nothing on it
SCALE_BANDS: tuple[tuple[float, float], ...] = ((0.5, 0.7), (0.7, 1.3), (1.3, 1.6))  # smaller, as trained, larger


def measure_set(model, scenes: WorldSet, **options) -> dict:
    """`evaluation.run.measure` on `scenes` (`options`: its own), with what was drawn under "scenes"."""
    data, image = scenes.data()
    return {"scenes": scenes.describe(), **measure(model, data, image, **options)}


def by_scale_band(model, scenes: WorldSet, bands=SCALE_BANDS, **options) -> dict[str, dict]:
    """Grounding of `model` on `scenes` drawn again with each band's object scale range ("0.5-0.7" → the
    `grounding` part of `measure`'s report); nothing is imagined."""
    out = {}
    for lo, hi in bands:
        banded = replace(scenes, config=replace(scenes.config, scale_range=(lo, hi)))
        out[f"{lo:g}-{hi:g}"] = measure_set(model, banded, **options, imagine=False)["grounding"]
    return out
