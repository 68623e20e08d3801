"""Ship a trained model: 16-bit safetensors with the training provenance (per stage: config, steps, wall time,
final metrics) in its manifest, into a new directory (--out) or, with --into-package, as the package's
embedded default (echogen_ros/model/default, at most LIMIT_MB).

    echogen-train ship runs/tabletop_cycle_rl/final --out DIR [--overwrite] [--runs runs] [--eval eval.json]
    echogen-train ship runs/tabletop_cycle_rl/final --into-package [--runs runs] [--eval eval.json]

Nothing is written into the installed package without --into-package (an --out inside it is refused), and
every output is written all at once: a failure leaves the old directory as it was.

A model that already carries a training record (one shipped elsewhere, say on a GPU machine) keeps it when
--runs holds no runs of its stages. `--continuation RUN` (repeatable, in order) appends the record of a run
that continued training from such a model (`model.init=<the shipped model>`) under `training.continuations`;
a model directory written by `echogen-train transplant-vision` or `transplant-tokenizer` takes its place in
that list the same way (its record: the donor, and for an encoder the fit's steps and wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import torch

import echogen_ros
from echogen_ros.model.checkpoint import PIPELINE_STAGES
from echogen_ros.model.echogen import DEFAULT_MODEL_DIR, EchoGen
from echogen_ros.outputs import OutputError, check_target, staged
from echogen_training import transplants

LIMIT_MB = 40  # the embedded default's share of the package (test/test_default_model.py holds it to this)
PACKAGE_DIR = Path(echogen_ros.__file__).resolve().parent  # where nothing is written without --into-package
PACKAGE_MODEL = DEFAULT_MODEL_DIR


def stage_record(run: Path) -> dict | None:
    """What a stage's run directory says about it: resolved config, steps and wall time."""
    pointer = run / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    try:
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
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{run} is not a run the trainer finished writing ({type(exc).__name__}: {exc})") from None


def _segments(train: list[dict]) -> list[float]:
    """Wall time of a run that may have been resumed: time_s restarts at each invocation."""
    total, last = [], 0.0
    for record in train:
        if record["time_s"] < last:
            total.append(last)
        last = record["time_s"]
    return [*total, last]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the model directory to ship (a run's final/, a transplant)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="the new model directory (never inside the installed package)")
    where.add_argument(
        "--into-package", action="store_true", help=f"replace the package's embedded default model ({PACKAGE_MODEL})"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an --out this tool wrote before")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="where the tabletop_<stage> runs are")
    parser.add_argument("--eval", type=Path, default=None, help="an `echogen eval --json` report to embed")
    parser.add_argument(
        "--continuation", type=Path, action="append", default=[], help="a run continuing the recorded model"
    )


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        check_out(args.out, args.overwrite)
    elif args.overwrite:
        raise OutputError("--overwrite is for --out; --into-package always replaces the embedded default")
    continuations = [continuation(path) for path in args.continuation]
    report = _read_eval(args.eval) if args.eval is not None else None
    model = EchoGen.load(args.model)
    model.model.to(torch.float16)
    model.manifest["training"] = training_record(model, args.runs, continuations)
    metrics = dict(model.manifest.get("metrics", {}))
    if report is not None:
        metrics["eval"] = report
    if args.into_package:
        out = into_package(model, metrics)
    else:
        with staged(args.out, args.overwrite, kind="model (echogen-train ship)") as partial:
            model.save(partial, metrics=metrics)
        out = args.out
    print(f"wrote {out} ({megabytes(out):.1f} MB)")
    return 0


def training_record(model: EchoGen, runs: Path, continuations: list[dict]) -> dict:
    """The stages' records from `runs` (none there: the model's own record, as a re-shipped model keeps it), then
    the continuations; a transplant among them is recorded there only, where it happened."""
    training = {s: r for s in PIPELINE_STAGES if (r := stage_record(runs / f"tabletop_{s}")) is not None}
    training = training or dict(model.manifest.get("training", {}))
    if continuations:
        training["continuations"] = [*training.get("continuations", []), *continuations]
        for stage in transplants.STAGES:  # inherited by the runs after it: recorded in its place
            if any(c["stage"] == stage for c in continuations):
                training.pop(stage, None)
    return training


def check_out(out: Path, overwrite: bool) -> None:
    """Raise OutputError unless `out` may be written: outside the installed package, new or empty (or, with
    `overwrite`, one an echogen tool wrote)."""
    if Path(out).resolve().is_relative_to(PACKAGE_DIR):
        raise OutputError(f"--out {out} is inside the installed package; ship there with --into-package")
    check_target(out, overwrite)


def continuation(run: Path) -> dict:
    """The record of a run (or a transplanted model) that continued from the shipped model's record."""
    if (record := stage_record(run)) is not None:
        return {"run": run.name, "stage": record["config"]["stage"], **record}
    transplant = transplants.read(run)
    if transplant is None:
        raise ValueError(
            f"--continuation {run} is neither a training run (no checkpoints/latest) nor a model made by "
            "echogen-train transplant-vision or transplant-tokenizer"
        )
    stage, record = transplant
    return {"run": run.name, "stage": stage, **record}


def _read_eval(path: Path) -> dict:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"--eval {path} is not an `echogen eval --json` report ({exc})") from None
    if not isinstance(report, dict):
        raise ValueError(f"--eval {path} must hold a JSON object (`echogen eval --json`)")
    return report


def megabytes(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file()) / 2**20


def into_package(model: EchoGen, metrics: dict) -> Path:
    """Replace the package's default model all at once: saved beside it, held to LIMIT_MB, then swapped in
    (the default carries no output marker, so echogen_ros.outputs.staged would refuse to replace it)."""
    target = PACKAGE_MODEL
    partial, old = (target.parent / f".{target.name}.{kind}-{os.getpid()}" for kind in ("partial", "old"))
    shutil.rmtree(partial, ignore_errors=True)
    try:
        model.save(partial, metrics=metrics)
        if (size := megabytes(partial)) > LIMIT_MB:
            raise ValueError(f"the shipped model is {size:.1f} MB, over the package's {LIMIT_MB} MB; not shipped")
        if target.exists():
            target.rename(old)
        try:
            partial.rename(target)
        except OSError:
            old.rename(target)  # the old default back in place
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target
