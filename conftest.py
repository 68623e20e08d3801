"""Fixtures shared by the package's tests (test/) and the training package's (training/tests/)."""

from __future__ import annotations

import pytest
import torch


def _randomise(module: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    return module


@pytest.fixture
def randomise():
    """`randomise(module, seed=1)`: the module's weights drawn from N(0, 1), seeded; a decoder map drawn so
    changes what the decoder draws (a new one is zero: Janus' decoder)."""
    return _randomise


@pytest.fixture
def mapped_model():
    """`mapped_model(preset="tiny", seed=0, drawn=True)`: a new EchoGen with a decoder map (`model.decoder_map`),
    its map drawn at random (seed + 1), or left zero with `drawn=False`."""
    from echogen_ros.model import layout_decoder
    from echogen_ros.model.echogen import EchoGen

    def make(preset: str = "tiny", seed: int = 0, drawn: bool = True) -> EchoGen:
        model = EchoGen.create(preset, seed=seed)
        condition = layout_decoder.enable(model.model)
        if drawn:
            _randomise(condition, seed + 1)
        return model

    return make
