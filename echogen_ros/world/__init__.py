"""The procedural tabletop world: seeded scenes, exact boxes, unambiguous texts, COCO/RefCOCO export."""

from echogen_ros.domain.relations import Truth, relation_truth
from echogen_ros.world.catalog import CATEGORIES, COLOURS, SPLITS, vocabulary
from echogen_ros.world.dataset import WorldSample, export, world_sample, world_samples
from echogen_ros.world.render import pixel_box, render
from echogen_ros.world.scene import Scene, SceneConfig, SceneObject, sample_scene

__all__ = [
    "CATEGORIES",
    "COLOURS",
    "SPLITS",
    "Scene",
    "SceneConfig",
    "SceneObject",
    "Truth",
    "WorldSample",
    "export",
    "pixel_box",
    "relation_truth",
    "render",
    "sample_scene",
    "vocabulary",
    "world_sample",
    "world_samples",
]
