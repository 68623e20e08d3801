"""Exported-graph parity: the engine's box tokens must equal torch's on the world's test scenes."""

from __future__ import annotations

import numpy as np

from echogen_ros.world.dataset import world_sample


def parity(model, engine, scenes: int = 5, seed: int = 0) -> dict:
    """Ground every expression of `scenes` test scenes with torch and with `engine`; count differences."""
    previous = model.engine
    mismatches = total = 0
    max_prob_error = 0.0
    try:
        for index in range(scenes):
            sample = world_sample(seed, index, "test")
            expressions = [e.text for e in sample.expressions][:8] or ["the cup"]
            image = sample.image()
            model.engine = None
            reference = model.ground_many(image, expressions)
            model.engine = engine
            candidate = model.ground_many(image, expressions)
            for a, b in zip(reference, candidate):
                total += 1
                mismatches += int(not np.allclose(a.box, b.box))
                max_prob_error = max(max_prob_error, abs(a.score - b.score))
    finally:
        model.engine = previous
    return {"expressions": total, "token_mismatches": mismatches, "max_score_error": round(max_prob_error, 8)}
