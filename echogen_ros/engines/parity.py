"""Exported-graph parity: the engine's box tokens must equal torch's on the world's test scenes, and its
probabilities, refined coordinates and no-target probabilities must agree closely."""

from __future__ import annotations

from echogen_ros.world.dataset import world_sample


def parity(model, engine, scenes: int = 5, seed: int = 0) -> dict:
    """Decode every expression of `scenes` test scenes with torch and with `engine`; count token differences
    and report the largest probability and (normalised) coordinate differences."""
    mismatches = total = 0
    max_prob_error = max_coord_error = max_absent_error = 0.0
    for index in range(scenes):
        sample = world_sample(seed, index, "test")
        expressions = [e.text for e in sample.expressions][:8] or ["the cup"]
        array, ids, mask, _ = model.grounding_inputs(sample.image(), expressions)
        tokens, probs, coords, absent = model.decode_grounding(array, ids, mask)
        e_tokens, e_probs, e_coords, e_absent = model.decode_grounding(array, ids, mask, decode=engine.run)
        max_absent_error = max(max_absent_error, float((absent - e_absent.float()).abs().max()))
        same = (tokens == e_tokens).all(-1)
        total += len(expressions)
        mismatches += int((~same).sum())
        if bool(same.any()):  # differences of the rows that chose the same bins
            max_prob_error = max(max_prob_error, float((probs - e_probs.float())[same].abs().max()))
            max_coord_error = max(max_coord_error, float((coords - e_coords.float())[same].abs().max()))
    return {
        "expressions": total,
        "token_mismatches": mismatches,
        "max_score_error": round(max_prob_error, 8),
        "max_coord_error": round(max_coord_error, 8),
        "max_absent_error": round(max_absent_error, 8),
    }
