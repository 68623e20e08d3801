"""Helpers for training tests: tiny configs that run every stage in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest
from echogen_training.config import TrainConfig, load_config


@pytest.fixture
def tiny_config(tmp_path: Path):
    def make(stage: str, *overrides: str) -> TrainConfig:
        base = [
            "model.init=tiny", "data.batch_size=4", "data.count=16", "data.render_scales=[0.25]",
            "optim.max_steps=3", "optim.warmup_steps=1", "eval.every=0", f"run.out={tmp_path / stage}",
            "run.save_every=2", "run.log_every=1", "run.progress=false", "run.autocast=none",
            "cycle_rl.layouts_per_step=2", "cycle_rl.group_size=2",
        ]  # fmt: skip
        return load_config(None, [*base, *overrides], stage=stage)

    return make


@pytest.fixture(scope="session")
def world_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from echogen_ros.world.dataset import export

    out = tmp_path_factory.mktemp("world") / "export"
    export(out, seed=0, count=6, width=160, height=120)
    return out
