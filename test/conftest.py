"""Shared fixtures: small world exports written once per test session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from echogen_ros.world.dataset import export


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-scene train export at 640×480."""
    out = tmp_path_factory.mktemp("world") / "train"
    export(out, seed=7, count=60, split="train")
    return out


@pytest.fixture(scope="session")
def world_annotations(world_dir: Path) -> dict:
    return json.loads((world_dir / "annotations.json").read_text())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised `tiny` EchoGen model directory (fast; every code path)."""
    from echogen_ros.model.echogen import EchoGen

    return EchoGen.create("tiny", seed=0).save(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    from echogen_ros.model.echogen import EchoGen

    return EchoGen.load(tiny_model_dir)


@pytest.fixture
def applied_limits():
    """`applied_limits(name=value, ...)` puts those input limits in force for the test, then restores."""
    from echogen_ros import limits

    before = limits.active()
    yield lambda **values: limits.apply(before.with_values(**values))
    limits.apply(before)
