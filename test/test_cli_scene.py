"""`echogen scene`: the listing (by label, or the trained one-pass one) as JSON and as text, and one line with
exit code 2 for a bad image, a bad listing or a model not trained to list scenes in one pass."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest

from echogen_ros.cli import main
from echogen_ros.model import checkpoint, inventory
from echogen_ros.world.dataset import world_sample


@pytest.fixture(scope="module")
def image_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "scene.png"
    cv2.imwrite(str(path), cv2.cvtColor(world_sample(0, 2, "test").image(320, 240), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def capable_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random model, its manifest saying it lists scenes (it lists nothing: it ends at once)."""
    out = tmp_path_factory.mktemp("capable") / "model"
    shutil.copytree(tiny_model_dir, out)
    checkpoint.write_manifest(out, inventory.with_capability(checkpoint.read_manifest(out)))
    return out


def test_scene_prints_the_listing_as_json_and_as_text(image_path: Path, capable_dir: Path, capsys) -> None:
    one_pass = ["scene", "--image", str(image_path), "--model", str(capable_dir), "--listing", "sequence"]
    assert main([*one_pass, "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert set(listing) == {"objects", "out_of_domain", "calibrated", "reason", "latency_ms"}
    assert listing["objects"] == [] and listing["reason"] == "the model lists nothing"
    assert main([*one_pass, "--threshold", "0.5"]) == 0
    assert capsys.readouterr().out.startswith("nothing listed: the model lists nothing\n")
    assert main(["scene", "--image", str(image_path), "--model", str(capable_dir), "--json"]) == 0
    by_label = json.loads(capsys.readouterr().out)  # the default: every label grounded, by any model
    assert by_label["objects"] and {"label", "box", "score"} <= set(by_label["objects"][0])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--image", "missing.png"], "image missing.png does not exist"),
        (["--image", "{bad}"], "cannot decode"),
        (["--image", "{image}", "--threshold", "2"], "outside [0, 1]"),
        (["--image", "{image}", "--model", "{plain}", "--listing", "sequence"], "not trained to list a scene"),
        (["--image", "{image}", "--listing", "guess"], "invalid choice: 'guess'"),
    ],
)
def test_scene_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, image_path: Path, tiny_model_dir: Path, tmp_path: Path, capsys
) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    values = {"{image}": str(image_path), "{bad}": str(bad), "{plain}": str(tiny_model_dir)}
    assert main(["scene", *[values.get(a, a) for a in argv]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("echogen: error:") and message in err, err
