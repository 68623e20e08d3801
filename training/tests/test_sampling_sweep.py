"""experiments.sampling_sweep: the row for a model's own sampling setting is what `echogen eval`
measures, other settings sample differently, the model keeps its defaults, and bad arguments exit non-zero."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from experiments import sampling_sweep

from echogen_ros.evaluation.run import evaluate
from echogen_ros.model.echogen import DEFAULT_MODEL_DIR, EchoGen


@pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "echogen.json").is_file(), reason="needs the embedded model (a random one finds nothing)"
)
def test_the_models_own_setting_reproduces_eval(world_export: Path, capsys) -> None:
    model, model_dir = EchoGen.load(), DEFAULT_MODEL_DIR  # a model whose imagined objects are found back
    sweep = sampling_sweep
    own = (model.guidance, model.temperature)  # the manifest's sampling setting
    args = ["--guidance", "0", str(own[0]), "--temperature", str(own[1]), "--limit", "2"]
    assert sweep.main([str(model_dir), str(world_export), *args]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["guidance"], r["temperature"]) for r in rows] == [(0.0, own[1]), own]
    measured = evaluate(model, world_export, limit=2, imagine_limit=2)
    assert {k: rows[1][k] for k in ("ap", "ap50", "ap75", "mean_iou", "failure_rate", "objects")} == {
        **{k: measured["layout_to_image"][k] for k in ("ap", "ap50", "ap75")},
        **{k: measured["cycle"][k] for k in ("mean_iou", "failure_rate", "objects")},
    }
    assert rows[0]["mean_iou"] != rows[1]["mean_iou"]  # unguided sampling draws other scenes
    again = sweep.sweep(model, world_export, [5.0], [0.5], limit=1)
    assert len(again) == 1 and (model.guidance, model.temperature) == own  # the defaults are restored


@pytest.mark.parametrize("bad", [["--guidance", "-1"], ["--temperature", "0"], ["--limit", "-1"]])
def test_bad_arguments_exit_2(world_export: Path, tmp_path: Path, bad: list[str]) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    assert sampling_sweep.main([str(model_dir), str(world_export), *bad]) == 2


def test_a_missing_export_exits_1(tmp_path: Path, capsys) -> None:
    model_dir = EchoGen.create("tiny", seed=0).save(tmp_path / "model")
    assert sampling_sweep.main([str(model_dir), str(tmp_path / "nowhere")]) == 1
    assert "echogen world" in capsys.readouterr().err
