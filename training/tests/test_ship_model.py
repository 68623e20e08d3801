"""`echogen-train ship` (echogen_training.tools.ship): a finished run becomes a 16-bit model directory carrying
its training record; re-shipping a shipped model (one trained elsewhere, its runs not here) keeps that record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from echogen_training.cli import main as echogen_train
from echogen_training.loop import Trainer
from echogen_training.tools import ship as ship_tool
from safetensors import safe_open


def ship(args: list[str]) -> int:
    return echogen_train(["ship", *args])


def test_ship_records_the_runs_and_reshipping_keeps_the_record(tiny_config, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    config = tiny_config("vision", f"run.out={runs / 'tabletop_vision'}")
    assert Trainer(config).run() == 0
    assert ship([str(runs / "tabletop_vision" / "final"), "--runs", str(runs), "--out", str(tmp_path / "a")]) == 0
    manifest = json.loads((tmp_path / "a" / "echogen.json").read_text())
    record = manifest["training"]["vision"]
    assert list(manifest["training"]) == ["vision"] and record["steps"] == 3 and record["wall_s"] > 0
    assert record["config"]["optim"]["max_steps"] == 3
    with safe_open(str(tmp_path / "a" / "model.safetensors"), "pt") as weights:
        assert {weights.get_slice(k).get_dtype() for k in weights.keys()} == {"F16"}  # noqa: SIM118
    assert ship([str(tmp_path / "a"), "--runs", str(tmp_path / "none"), "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "echogen.json").read_text())["training"] == manifest["training"]


def test_a_continued_model_keeps_the_record_and_appends_the_continuation(tiny_config, capsys, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert Trainer(tiny_config("vision", f"run.out={runs / 'tabletop_vision'}")).run() == 0
    assert ship([str(runs / "tabletop_vision" / "final"), "--runs", str(runs), "--out", str(tmp_path / "a")]) == 0
    shipped = json.loads((tmp_path / "a" / "echogen.json").read_text())["training"]
    more = tiny_config("pmtp", f"model.init={tmp_path / 'a'}", f"run.out={tmp_path / 'more'}", "model.layout_map=true")
    assert Trainer(more).run() == 0
    none = str(tmp_path / "none")
    args = [str(tmp_path / "more" / "final"), "--runs", none, "--out", str(tmp_path / "b")]
    assert ship([*args, "--continuation", str(tmp_path / "more")]) == 0
    record = json.loads((tmp_path / "b" / "echogen.json").read_text())["training"]
    assert record["vision"] == shipped["vision"]
    (continued,) = record["continuations"]
    assert continued["stage"] == "pmtp" and continued["steps"] == 3 and continued["run"] == "more"
    assert continued["config"]["model"]["layout_map"] is True
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "b").iterdir())
    assert ship([*args, "--overwrite", "--continuation", none]) == 2  # not a run: refused, nothing half-written
    assert "neither a training run" in capsys.readouterr().err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "b").iterdir()) == before


def test_a_vision_transplant_is_recorded_in_its_place_among_the_continuations(tiny_config, tmp_path: Path) -> None:
    from echogen_ros.model.echogen import EchoGen

    runs = tmp_path / "runs"
    assert Trainer(tiny_config("vision", f"run.out={runs / 'tabletop_vision'}")).run() == 0
    assert ship([str(runs / "tabletop_vision" / "final"), "--runs", str(runs), "--out", str(tmp_path / "a")]) == 0
    donor = EchoGen.create("tiny", seed=5).save(tmp_path / "donor")
    transplant = [str(tmp_path / "a"), str(donor), "--out", str(tmp_path / "tx"), "--steps", "3", "--batch", "2"]
    assert echogen_train(["transplant-vision", *transplant]) == 0
    assert Trainer(tiny_config("pmtp", f"model.init={tmp_path / 'tx'}", f"run.out={tmp_path / 'more'}")).run() == 0
    args = [str(tmp_path / "more" / "final"), "--runs", str(tmp_path / "none"), "--out", str(tmp_path / "b")]
    assert ship([*args, "--continuation", str(tmp_path / "tx"), "--continuation", str(tmp_path / "more")]) == 0
    training = json.loads((tmp_path / "b" / "echogen.json").read_text())["training"]
    assert "vision_transplant" not in training  # not twice: it is in the list, where it happened
    swapped, continued = training["continuations"]
    assert swapped["stage"] == "vision_transplant" and swapped["run"] == "tx" and swapped["steps"] == 3
    assert swapped["donor"] == str(donor.resolve()) and swapped["wall_s"] > 0
    assert continued["stage"] == "pmtp" and continued["run"] == "more"
    # the continued run's model inherits the transplant's manifest record, but it is no transplant
    again = [*args[:-1], str(tmp_path / "c"), "--continuation", str(tmp_path / "more" / "final")]
    assert ship(again) == 2 and not (tmp_path / "c").exists()
    (tmp_path / "tx" / "vision_transplant.json").write_text("{not json")
    assert ship([*args[:-1], str(tmp_path / "c"), "--continuation", str(tmp_path / "tx")]) == 2


def _listing(directory: Path) -> list[tuple[str, int, bytes]]:
    """Every path under `directory`, with its mtime and (files) bytes."""
    return sorted(
        (str(p.relative_to(directory)), p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else b"")
        for p in directory.rglob("*")
    )


@pytest.fixture
def package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A stand-in for the installed echogen_ros package (its embedded default a tiny model), so that a ship
    that writes where it must not damages nothing real."""
    from echogen_ros.model.echogen import EchoGen

    root = tmp_path / "site-packages" / "echogen_ros"
    default = EchoGen.create("tiny", seed=3).save(root / "model" / "default")
    monkeypatch.setattr(ship_tool, "PACKAGE_DIR", root)
    monkeypatch.setattr(ship_tool, "PACKAGE_MODEL", default)
    return root


def test_the_guard_watches_the_installed_package() -> None:
    import echogen_ros
    from echogen_ros.model.echogen import DEFAULT_MODEL_DIR

    assert Path(echogen_ros.__file__).resolve().parent == ship_tool.PACKAGE_DIR
    assert ship_tool.PACKAGE_MODEL == DEFAULT_MODEL_DIR and DEFAULT_MODEL_DIR.is_relative_to(ship_tool.PACKAGE_DIR)


def test_without_a_destination_ship_writes_nothing(capsys, tmp_path: Path) -> None:
    """The real package: leaving out --out is refused before anything is read (it used to replace the default)."""
    from echogen_ros.model.echogen import DEFAULT_MODEL_DIR, EchoGen

    def listing() -> list | None:
        return (
            sorted((p.name, p.stat().st_mtime_ns) for p in DEFAULT_MODEL_DIR.iterdir())
            if DEFAULT_MODEL_DIR.is_dir()
            else None
        )

    model = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    before = listing()
    assert ship([str(model), "--runs", str(tmp_path / "none")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("echogen-train: error: ") and "--out" in line and "--into-package" in line
    assert listing() == before


@pytest.mark.parametrize(
    "where",
    [[], ["--out", "PACKAGE/model/default"], ["--out", "PACKAGE/model/default", "--overwrite"],
     ["--out", "PACKAGE/model/other"], ["--out", "PACKAGE"], ["--into-package", "--overwrite"],
     ["--into-package", "--out", "ELSEWHERE"]],
)  # fmt: skip
def test_ship_never_writes_into_the_package_without_the_flag(
    package: Path, capsys, tmp_path: Path, where: list[str]
) -> None:
    from echogen_ros.model.echogen import EchoGen

    model = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    before = _listing(package.parent)
    args = [a.replace("PACKAGE", str(package)).replace("ELSEWHERE", str(tmp_path / "elsewhere")) for a in where]
    assert ship([str(model), "--runs", str(tmp_path / "none"), *args]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("echogen-train: error: ")
    assert _listing(package.parent) == before  # nothing new, changed or half-written anywhere in it
    assert not (tmp_path / "elsewhere").exists()


def test_into_package_replaces_the_default_all_at_once(
    package: Path, tiny_config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from echogen_ros.model.echogen import EchoGen

    runs = tmp_path / "runs"
    assert Trainer(tiny_config("vision", f"run.out={runs / 'tabletop_vision'}")).run() == 0
    final = runs / "tabletop_vision" / "final"
    default = package / "model" / "default"
    assert ship([str(final), "--runs", str(runs), "--into-package"]) == 0
    shipped = EchoGen.load(default)
    assert shipped.manifest["training"]["vision"]["steps"] == 3
    with safe_open(str(default / "model.safetensors"), "pt") as weights:
        assert {weights.get_slice(k).get_dtype() for k in weights.keys()} == {"F16"}  # noqa: SIM118
    assert sorted(p.name for p in (package / "model").iterdir()) == ["default"]  # no partial or old copy left
    assert not (default / ".echogen-output").exists()  # the package's files are the model's, nothing else
    assert ship([str(default), "--runs", str(tmp_path / "none"), "--into-package"]) == 0  # re-shipping itself
    assert EchoGen.load(default).manifest["training"] == shipped.manifest["training"]
    before = _listing(default)
    (tmp_path / "eval.json").write_text("[1, 2]")
    assert ship([str(final), "--runs", str(runs), "--into-package", "--eval", str(tmp_path / "eval.json")]) == 2
    monkeypatch.setattr(ship_tool, "LIMIT_MB", 0.01)  # over the package's budget: refused, the default kept
    assert ship([str(final), "--runs", str(runs), "--into-package"]) == 2
    assert _listing(default) == before
    assert sorted(p.name for p in (package / "model").iterdir()) == ["default"]


def test_an_out_is_written_once_unless_overwritten(tmp_path: Path, capsys) -> None:
    from echogen_ros.model.echogen import EchoGen

    model = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    out, none = tmp_path / "out", str(tmp_path / "none")
    assert ship([str(model), "--runs", none, "--out", str(out)]) == 0
    first = _listing(out)
    assert ship([str(model), "--runs", none, "--out", str(out)]) == 2  # not without --overwrite
    assert "not empty" in capsys.readouterr().err and _listing(out) == first
    (tmp_path / "eval.json").write_text("{not json")
    bad_eval = ["--eval", str(tmp_path / "eval.json"), "--overwrite"]
    assert ship([str(model), "--runs", none, "--out", str(out), *bad_eval]) == 2 and _listing(out) == first
    assert ship([str(model), "--runs", none, "--out", str(model), "--overwrite"]) == 2  # not ours: kept
    (tmp_path / "eval.json").write_text('{"grounding": {"acc@0.5": 0.5}}')
    good_eval = ["--eval", str(tmp_path / "eval.json"), "--overwrite"]
    assert ship([str(model), "--runs", none, "--out", str(out), *good_eval]) == 0  # the timed recipe's re-ship
    assert EchoGen.load(out).manifest["metrics"]["eval"] == {"grounding": {"acc@0.5": 0.5}}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no partial left
