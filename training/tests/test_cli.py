"""`echogen-train`: the stage form (`echogen-train STAGE --config FILE [key=value ...]`) as before, and the tools
for trained models dispatched by name (`echogen-train TOOL ...`), each bad input one line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from echogen_training.cli import main
from echogen_training.tools import TOOLS


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_each_tool_is_a_subcommand_with_its_own_help(tool: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([tool, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: echogen-train {tool} ")
    assert "--out" in out or "--model" in out  # where it writes: a new directory, or the model it completes


@pytest.mark.parametrize("tool", sorted(TOOLS))
@pytest.mark.parametrize("bad", [[], ["MODEL", "DONOR", "--out"], ["--nonsense"]])
def test_a_tools_bad_arguments_are_one_line_and_exit_2(tool: str, bad: list[str], capsys) -> None:
    assert main([tool, *bad]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("echogen-train: error: ") and captured.out == ""


def test_the_stage_form_is_unchanged(tmp_path: Path, capsys) -> None:
    assert main(["vq", "--print-config", "optim.lr=0.5"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["stage"] == "vq" and printed["optim"]["lr"] == 0.5
    assert main(["--print-config", "pmtp"]) == 0  # options before the stage, as parse_intermixed_args allows
    assert yaml.safe_load(capsys.readouterr().out)["stage"] == "pmtp"
    assert main(["pmtp", "--print-config", "optim.typo_key=2"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("echogen-train: error: ") and "typo_key" in line
    with pytest.raises(SystemExit) as exit_info:  # not a stage nor a tool: argparse's usage and exit 2
        main(["shipit"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'shipit'" in capsys.readouterr().err


def test_the_installed_command_dispatches_tools(tmp_path: Path) -> None:
    """The console script and `python -m echogen_training` reach the tools too, without a traceback."""
    for command in ([str(Path(sys.executable).parent / "echogen-train")], [sys.executable, "-m", "echogen_training"]):
        if not Path(command[0]).exists():
            continue
        done = subprocess.run(
            [*command, "ship", str(tmp_path / "missing")], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
        assert "--out" in done.stderr and "--into-package" in done.stderr


def test_a_stage_whose_model_init_is_not_there_yet_says_so(tmp_path: Path, capsys, monkeypatch) -> None:
    """The shipped configs chain the stages (pmtp starts from runs/tabletop_vq/final): run before the vq
    stage, the error names the missing directory, not an 'unknown preset'."""
    monkeypatch.chdir(tmp_path)  # where runs/tabletop_vq/final is surely absent
    config = Path(__file__).resolve().parents[1] / "echogen_training" / "configs" / "tabletop_pmtp.yaml"
    assert main(["pmtp", "--config", str(config), f"run.out={tmp_path / 'p'}", "optim.max_steps=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "neither a model directory nor a preset" in err and "run that stage first" in err
