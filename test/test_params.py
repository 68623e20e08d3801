"""The node's parameter table, its validation, and config/echogen.yaml agree."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from echogen_ros.params import PARAMS, validate

ROOT = Path(__file__).resolve().parents[1]


def test_config_yaml_sets_every_parameter_validly() -> None:
    data = yaml.safe_load((ROOT / "config" / "echogen.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert set(values) == {p.name for p in PARAMS}
    for name, value in values.items():
        assert validate(name, value) is None, name
    for spec in PARAMS:
        assert validate(spec.name, spec.default) is None and spec.description


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("backend", "openvino", "choose from"),
        ("device", "gpu", "cpu, cuda or cuda:N"),
        ("score_threshold", 1.5, "outside"),
        ("grounding_every_frames", -1, "outside"),
        ("grounding_every_frames", "ten", "number"),
        ("debug_image", "yes", "true or false"),
        ("camera_reliability", "sometimes", "choose from"),
        ("no_such_parameter", 1, "unknown parameter"),
    ],
)
def test_bad_parameter_values_are_explained(name: str, value, message: str) -> None:
    assert message in validate(name, value)


def test_launch_file_declares_the_documented_arguments() -> None:
    text = (ROOT / "launch" / "bringup.launch.py").read_text()
    for argument in ("params_file", "namespace", "camera_topic", "model", "backend", "use_sim_camera"):
        assert re.search(rf'DeclareLaunchArgument\(\s*"{argument}"', text), argument
    compile(text, "bringup.launch.py", "exec")  # valid Python even where launch_ros is missing


def test_every_input_limit_is_documented_and_a_node_parameter() -> None:
    from echogen_ros import limits

    readme = (ROOT / "README.md").read_text()
    for f in fields(limits.Limits):
        assert f"`{limits.env_name(f.name)}`" in readme, f.name
        assert (f.name in {p.name for p in PARAMS}) == f.metadata["node"], f.name
    assert limits.Limits.from_environment({"ECHOGEN_MAX_TEXT_CHARS": "40"}).max_text_chars == 40
    for bad in ("many", "0", "-3", "99999999"):
        with pytest.raises(ValueError, match="ECHOGEN_MAX_TEXT_CHARS|max_text_chars"):
            limits.Limits.from_environment({"ECHOGEN_MAX_TEXT_CHARS": bad})
    with pytest.raises(ValueError, match="over max_frame_side"):
        limits.Limits(min_frame_side=64, max_frame_side=32)


def test_the_threshold_is_a_probability_and_the_models_default() -> None:
    """One threshold everywhere: the node's parameter, the runtime's default and the model's `find`."""
    from echogen_ros.model.finding import DEFAULT_THRESHOLD
    from echogen_ros.params import BY_NAME
    from echogen_ros.runtime.core import RuntimeConfig

    spec = BY_NAME["score_threshold"]
    assert spec.default == RuntimeConfig().score_threshold == DEFAULT_THRESHOLD == 0.5
    assert (spec.low, spec.high) == (0.0, 1.0) and "probability" in spec.description
