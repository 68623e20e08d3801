"""Provenance of transplanted models: a trained model given another run's part (`echogen-train
transplant-vision`: an encoder; `echogen-train transplant-tokenizer`: an image tokenizer; `echogen-train
separate-decoder`: a decoder that reads codes only; `echogen-train grow-vision`: its own encoder reading more
pixels or deeper, the model its own donor).

A transplant writes its record into the new model's manifest (`training.<stage>`) and into a file beside it.
The file is what `echogen-train ship --continuation` recognises a transplant by: a run continued from the
model inherits the manifest record, not the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from echogen_ros.model.echogen import EchoGen
from echogen_ros.outputs import OutputError, check_target, staged

# stage name (the key in the manifest's training record; the record file beside the model is <stage>.json) →
# the pipeline stage whose run the donor part comes from
STAGES = {
    "vision_transplant": "vision",
    "tokenizer_transplant": "vq",
    "decoder_separation": "vq",
    "vision_growth": "vision",
}


def check_out(out: Path, overwrite: bool, *inputs: Path) -> None:
    """Raise OutputError unless a transplant may write `out`: never one of its inputs, and only a new or empty
    directory (with `overwrite`, also one an echogen tool wrote; see echogen_ros.outputs.check_target)."""
    if Path(out).resolve() in {Path(p).resolve() for p in inputs}:
        raise OutputError(f"--out {out} is one of the input models; give a new --out")
    check_target(out, overwrite)


def save(
    model: EchoGen,
    model_dir: Path,
    donor: EchoGen,
    donor_dir: Path,
    out: Path,
    stage: str,
    record: dict,
    overwrite: bool = False,
) -> dict:
    """Complete `record` with where the parts came from, put it in the manifest under `stage` (keeping an
    earlier transplant's of the same kind as `previous`), save the model to `out` without the old metrics
    (they describe the model before the swap) with the record file beside it, all at once (`overwrite`: as
    `check_out`). Returns the record."""
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
    with staged(out, overwrite, kind=f"model ({stage})") as partial:
        model.save(partial, metrics={})
        (partial / f"{stage}.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
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
