"""Provenance of transplanted models: a trained model given another run's part (training/scripts/
transplant_vision.py: an encoder; transplant_tokenizer.py: an image tokenizer).

A transplant writes its record into the new model's manifest (`training.<stage>`) and into a file beside it.
The file is what ship_model.py --continuation recognises a transplant by: a run continued from the model
inherits the manifest record, not the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from echogen_ros.model.checkpoint import MANIFEST
from echogen_ros.model.echogen import EchoGen

# stage name (the key in the manifest's training record; the record file beside the model is <stage>.json) →
# the pipeline stage whose run the donor part comes from
STAGES = {"vision_transplant": "vision", "tokenizer_transplant": "vq"}


def occupied(out: Path, *inputs: Path) -> bool:
    """Whether `out` already holds a model or is one of the inputs (a transplant never overwrites either)."""
    return (out / MANIFEST).exists() or out.resolve() in {p.resolve() for p in inputs}


def save(model: EchoGen, model_dir: Path, donor: EchoGen, donor_dir: Path, out: Path, stage: str, record: dict) -> dict:
    """Complete `record` with where the parts came from, put it in the manifest under `stage` (keeping an
    earlier transplant's of the same kind as `previous`), save the model to `out` without the old metrics
    (they describe the model before the swap) and write the record file. Returns the record."""
    donor_stage = STAGES[stage]
    record.update(
        model=str(model_dir.resolve()), model_files=model.manifest.get("files", {}),
        donor=str(donor_dir.resolve()), donor_files=donor.manifest.get("files", {}),
        donor_preset=donor.manifest.get("preset"),
        **{f"donor_{donor_stage}": (donor.manifest.get("training") or {}).get(donor_stage)},
    )  # fmt: skip
    training = dict(model.manifest.get("training") or {})
    if stage in training:
        record["previous"] = training[stage]
    model.manifest = {**model.manifest, "training": {**training, stage: record}}
    model.save(out, metrics={})
    (out / f"{stage}.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return record


def read(model_dir: Path) -> tuple[str, dict] | None:
    """(stage, record) of a model a transplant made (None: not such a model)."""
    for stage in STAGES:
        path = model_dir / f"{stage}.json"
        if not path.is_file():
            continue
        try:
            return stage, json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc})") from None
    return None
