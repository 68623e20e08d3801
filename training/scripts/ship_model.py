"""Ship a trained model as the package's embedded default: 16-bit safetensors in echogen_ros/model/default,
with the training provenance (per stage: config, steps, wall time, final metrics) in its manifest.

    python training/scripts/ship_model.py runs/tabletop_cycle_rl/final [--runs runs] [--eval eval.json]

A model that already carries a training record (one shipped elsewhere, say on a GPU machine) keeps it when
--runs holds no runs of its stages. `--continuation RUN` (repeatable, in order) appends the record of a run
that continued training from such a model (`model.init=<the shipped model>`) under `training.continuations`;
a model directory written by `transplant_vision.py` or `transplant_tokenizer.py` takes its place in that list
the same way (its record: the donor, and for an encoder the fit's steps and wall time).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from echogen_training import transplants

from echogen_ros.model.checkpoint import PIPELINE_STAGES
from echogen_ros.model.echogen import DEFAULT_MODEL_DIR, EchoGen

LIMIT_MB = 40


def stage_record(run: Path) -> dict | None:
    """What a stage's run directory says about it: resolved config, steps and wall time."""
    pointer = run / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    trainer = json.loads((run / "checkpoints" / pointer.read_text().strip() / "trainer.json").read_text())
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in lines if r["split"] == "train"]
    evals = [r for r in lines if r["split"] == "eval"]
    config = trainer["config"]
    return {
        "steps": trainer["step"],
        "wall_s": round(sum(_segments(train)), 1),
        "seed": config["run"]["seed"],
        "data_seed": config["data"]["seed"],
        "config": config,
        "last_eval": evals[-1] if evals else None,
    }


def _segments(train: list[dict]) -> list[float]:
    """Wall time of a run that may have been resumed: time_s restarts at each invocation."""
    total, last = [], 0.0
    for record in train:
        if record["time_s"] < last:
            total.append(last)
        last = record["time_s"]
    return [*total, last]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="where the tabletop_<stage> runs are")
    parser.add_argument("--eval", type=Path, default=None, help="an `echogen eval --json` report to embed")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument(
        "--continuation", type=Path, action="append", default=[], help="a run continuing the recorded model"
    )
    args = parser.parse_args(argv)
    continuations = []
    for run in args.continuation:
        if (record := stage_record(run)) is not None:
            continuations.append({"run": run.name, "stage": record["config"]["stage"], **record})
            continue
        try:
            transplant = transplants.read(run)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if transplant is None:
            print(f"error: {run} is neither a training run (no checkpoints/latest) nor a model made by "
                  "transplant_vision.py or transplant_tokenizer.py", file=sys.stderr)  # fmt: skip
            return 2
        stage, record = transplant
        continuations.append({"run": run.name, "stage": stage, **record})
    model = EchoGen.load(args.model)
    model.model.to(torch.float16)
    training = {s: r for s in PIPELINE_STAGES if (r := stage_record(args.runs / f"tabletop_{s}")) is not None}
    training = training or dict(model.manifest.get("training", {}))  # re-shipping a shipped model keeps its record
    if continuations:
        training["continuations"] = [*training.get("continuations", []), *continuations]
        for stage in transplants.STAGES:  # inherited by the runs after it: recorded in its place
            if any(c["stage"] == stage for c in continuations):
                training.pop(stage, None)
    metrics = dict(model.manifest.get("metrics", {}))
    if args.eval is not None:
        metrics["eval"] = json.loads(args.eval.read_text())
    model.manifest["training"] = training
    shutil.rmtree(args.out, ignore_errors=True)
    model.save(args.out, metrics=metrics)
    size = sum(p.stat().st_size for p in args.out.iterdir()) / 2**20
    if size > LIMIT_MB:
        print(f"error: {args.out} is {size:.1f} MB, over the {LIMIT_MB} MB limit", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
