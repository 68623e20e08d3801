from __future__ import annotations

from pathlib import Path

import pytest
from echogen_training.cli import main
from echogen_training.config import ConfigError, load_config, to_dict

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "echogen_training" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    config = load_config(path)
    assert config.stage in path.name or config.stage == "pmtp"
    assert to_dict(config)["optim"]["max_steps"] > 0
    assert config.eval.split == "test"  # a periodic evaluation is looked at: never on a held-out split


def test_overrides_are_typed_and_nested() -> None:
    config = load_config(None, ["optim.lr=1e-3", "data.batch_size=7", "pmtp.tasks=[i2l]", "run.progress=false"])
    assert config.optim.lr == 1e-3 and config.data.batch_size == 7
    assert config.pmtp.tasks == ("i2l",) and config.run.progress is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.learning_rate=1"], "unknown key"),
        (["nonsense=1"], "unknown key"),
        (["data.batch_size=big"], "must be int"),
        (["run.progress=3"], "must be bool"),
        (["optim.betas=0.9"], "must be a list"),
        (["stage=warp"], "stage must be"),
        (["optim.lr"], "key.sub=value"),
        (["vq.edge_weight=-1"], "vq.edge_weight is a loss weight"),
        (["cycle_rl.l1_weight=-0.5"], "cycle_rl.l1_weight is a loss weight"),
        (["run.save_every=0"], "save_every and run.log_every must be >= 1"),
        (["run.keep_every=-2"], "keep_every >= 0"),
        (["eval.split=validation"], "eval.split must be one of train, val, test, heldout"),
    ],
)
def test_bad_configs_are_rejected_clearly(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_cli_rejects_a_bad_config_with_exit_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("optim: {lr: 1e-3, typo_key: 2}\n")
    assert main(["pmtp", "--config", str(path)]) == 2
    assert "typo_key" in capsys.readouterr().err
    assert main(["pmtp", "--config", str(tmp_path / "missing.yaml")]) == 2
