"""A model's provenance in one line, read from its manifest's training record: where it came from, the last
pipeline stage it went through, the runs and transplants that continued it, and its recorded figures."""

from __future__ import annotations

import itertools

from echogen_ros.model.checkpoint import PIPELINE_STAGES


def describe_model(model, where: str) -> str:
    """One line on which model a report shows: where it came from, its last stage, its held-out figures."""
    manifest = model.manifest
    training = dict(manifest.get("training", {}))
    continuations = training.pop("continuations", [])
    # the pipeline's last recorded stage, then the runs that continued its model
    done = [name for name in PIPELINE_STAGES if name in training]
    stage = done[-1] if done else manifest.get("stage", "?")
    trained = f"trained through {stage}"
    if continuations:
        trained += ", then " + " + ".join(_continuations(continuations))
    text = f"Model: {where} (preset {manifest.get('preset', '?')}, {trained})"
    report = manifest.get("metrics", {}).get("eval", {})
    if "grounding" in report:
        text += f"; held-out grounding Acc@0.5 {report['grounding']['acc@0.5']:.2f}"
        if "cycle" in report:
            text += f", cycle IoU {report['cycle']['mean_iou']:.2f}"
    return text + "."


# transplants are no runs: a phrase of their own each
TRANSPLANTS = {"vision_transplant": "a new vision encoder", "tokenizer_transplant": "a new image tokenizer"}


def _kind(record: dict) -> str:
    config = record.get("config", {})
    if record.get("stage") in TRANSPLANTS:
        return str(record["stage"])
    if record.get("stage") == "vq" and config.get("vq", {}).get("decoder_only"):
        return "VQ-decoder (reading the layout)" if config.get("model", {}).get("decoder_map") else "VQ-decoder"
    if config.get("model", {}).get("generation_only"):
        return f"{record.get('stage', '?')} (generation path only)"
    if config.get("model", {}).get("vision_only"):
        return f"{record.get('stage', '?')} (vision encoder only)"
    return str(record.get("stage", "?"))


def _transplant(record: dict) -> str:
    """A swapped part's phrase; a tokenizer given an outer level (the same codes, drawn larger) says so."""
    if "outer_level" in record:
        return f"a VQ level drawing {record.get('after', {}).get('image_size', '?')} px"
    return TRANSPLANTS[record["stage"]]


def _continuations(records: list[dict]) -> list[str]:
    """Consecutive runs of one kind as one phrase: "20,199 pmtp steps in 11 runs", "645 djo steps"."""
    phrases = []
    for kind, group in itertools.groupby(records, key=_kind):
        runs = list(group)
        if kind in TRANSPLANTS:
            phrases += [_transplant(r) for r in runs]
            continue
        steps = [r.get("steps") for r in runs]
        count = f"{sum(steps):,}" if all(isinstance(n, int) for n in steps) else "?"
        kind, _, only = kind.partition(" (")  # "pmtp (generation path only)": the steps before the qualifier
        only = f" ({only}" if only else ""
        phrases.append(f"{count} {kind} steps{only}" + (f" in {len(runs)} runs" if len(runs) > 1 else ""))
    return phrases
