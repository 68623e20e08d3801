"""training/scripts/retrain_generator.sh: the three PMTP runs that teach a generator a new tokenizer, on a tiny
model read at twice its image size (its own donor: `echogen-train transplant-tokenizer`); the first run leaves
everything that grounds alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from echogen_training.cli import main as echogen_train

from echogen_ros.model.echogen import EchoGen

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "retrain_generator.sh"
TINY = [
    "data.count=16", "data.render_scales=[0.25]", "optim.max_steps=2", "optim.warmup_steps=1",
    "run.autocast=none", "run.log_every=1",
]  # fmt: skip


def _run(*args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "WORKERS": "0", "BATCH": "4", "OMP_NUM_THREADS": "1", **env_extra}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)


def test_three_runs_teach_the_generator_a_larger_image(tmp_path: Path) -> None:
    small = EchoGen.create("tiny", seed=0).save(tmp_path / "small")
    big = tmp_path / "big"
    assert echogen_train(["transplant-tokenizer", str(small), str(small), "--out", str(big), "--image-size", "64"]) == 0
    done = _run(str(big), str(tmp_path / "runs"), "60", *TINY)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line.split(":")[0] for line in done.stdout.splitlines() if line.startswith("== ")][:3] == [
        "== gen",
        "== joint",
        "== anneal",
    ]
    before, gen = EchoGen.load(big), EchoGen.load(tmp_path / "runs" / "gen" / "final")
    after = EchoGen.load(tmp_path / "runs" / "anneal" / "final")
    for part in ("vision_model", "aligner", "language_model"):  # generation_only: grounding untouched
        mine, theirs = getattr(before.model.model, part).state_dict(), getattr(gen.model.model, part).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), part
    head = (before.model.model.generation_head.state_dict(), gen.model.model.generation_head.state_dict())
    assert not all(torch.equal(head[0][k], head[1][k]) for k in head[0])  # the generation path trained
    lm = (gen.model.model.language_model.state_dict(), after.model.model.language_model.state_dict())
    assert not all(torch.equal(lm[0][k], lm[1][k]) for k in lm[0])  # then full PMTP moved the LM
    vision = (before.model.model.vision_model.state_dict(), after.model.model.vision_model.state_dict())
    assert all(torch.equal(vision[0][k], vision[1][k]) for k in vision[0])  # and never the encoder
    assert (after.image_size, after.scheme.generation_tokens) == (64, 64)
    assert after.model.config.image_positions["grid"] == 8 and after.model.config.layout_map["grid"] == 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["MODEL", "RUNS"], "usage"),
        (["MODEL", "RUNS", "soon"], "TRAIN_SECONDS must be a number"),
        (["MODEL", "RUNS", "0"], "TRAIN_SECONDS must be > 0"),  # 0 would mean no budget at all to the trainer
        (["MODEL", "RUNS", "0.1"], "TRAIN_SECONDS must be > 0"),  # a run would get 0.0 s
        (["MODEL", "RUNS", "inf"], "TRAIN_SECONDS must be > 0"),
        (["NONE", "RUNS", "5"], "not a model"),
    ],
)
def test_bad_arguments_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    model = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    where = {"MODEL": str(model), "RUNS": str(tmp_path / "runs"), "NONE": str(tmp_path / "none")}
    done = _run(*[where.get(a, a) for a in args])
    assert done.returncode == 2 and message in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("shares", ["0.5 0.5", "0.5 0 0.5", "a b c"])
def test_bad_shares_exit_2(tmp_path: Path, shares: str) -> None:
    model = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    done = _run(str(model), str(tmp_path / "runs"), "60", SHARES=shares)
    assert done.returncode == 2 and "SHARES" in done.stderr
    assert not (tmp_path / "runs").exists()
