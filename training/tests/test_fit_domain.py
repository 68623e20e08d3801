"""`echogen-train fit-domain` (echogen_training.tools.fit_domain): a model directory (or, with --out, a copy of
it) gets a domain check that loads with it, every other file as it was and the manifest's hashes valid; fitting
again replaces it; a bad input is one line and exit code 2, leaving the directory as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from echogen_training.cli import main as echogen_train

from echogen_ros.model import checkpoint
from echogen_ros.model.domain import DOMAIN_FILE
from echogen_ros.model.echogen import EchoGen


def contents(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return EchoGen.create("tiny").save(tmp_path / "model")


def test_fit_domain_gives_the_directory_a_check_and_fitting_again_replaces_it(model_dir: Path, capsys) -> None:
    before = contents(model_dir)
    assert echogen_train(["fit-domain", "--model", str(model_dir), "--scenes", "100", "--val-scenes", "100"]) == 0
    record = json.loads(capsys.readouterr().out)
    after = contents(model_dir)
    assert set(after) == {*before, DOMAIN_FILE}
    assert all(after[name] == data for name, data in before.items() if name != checkpoint.MANIFEST)
    manifest = checkpoint.read_manifest(model_dir)
    assert manifest["domain"]["fitted_on"]["scenes"] == 100 and manifest["domain"]["threshold_from"]["frames"] == 100
    model = EchoGen.load(model_dir)
    assert model.domain.threshold == record["threshold"] > 0
    assert sorted(p.name for p in model_dir.parent.iterdir()) == ["model"]  # no partial or old copy left
    assert echogen_train(["fit-domain", "--model", str(model_dir), "--scenes", "100", "--val-scenes", "100",
                          "--seed", "1"]) == 0  # fmt: skip
    assert EchoGen.load(model_dir).domain.record["fitted_on"]["seed"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--scenes", "10"], "must be ≥ 100"), (["--seed", "x"], "invalid int value")],
)
def test_a_bad_input_is_one_line_and_leaves_the_directory(model_dir: Path, capsys, args, message: str) -> None:
    before = contents(model_dir)
    assert echogen_train(["fit-domain", "--model", str(model_dir), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert contents(model_dir) == before


def test_with_out_the_model_is_copied_and_left_as_it_was(model_dir: Path, tmp_path: Path) -> None:
    before = contents(model_dir)
    out = tmp_path / "with_check"
    assert echogen_train(["fit-domain", "--model", str(model_dir), "--out", str(out), "--scenes", "100",
                          "--val-scenes", "100"]) == 0  # fmt: skip
    assert contents(model_dir) == before and EchoGen.load(model_dir).domain is None
    assert EchoGen.load(out).domain is not None
    assert echogen_train(["fit-domain", "--model", str(model_dir), "--out", str(out)]) == 2  # not without --overwrite


def test_a_missing_model_is_one_line(tmp_path: Path, capsys) -> None:
    assert echogen_train(["fit-domain", "--model", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
