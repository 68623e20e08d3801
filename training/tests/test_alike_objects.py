"""experiments.alike_objects on held-out world scenes with alike objects, with the embedded model: the
counts match the export, `ground_layout` finds more of the alike objects than one query each can (at most
one of each pair), and the ambiguity flag's rows add up."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from experiments import alike_objects

from echogen_ros.evaluation.run import load_export, object_label
from echogen_ros.model.echogen import DEFAULT_MODEL_DIR, EchoGen
from echogen_ros.planning.grounders import is_ambiguous
from echogen_ros.world.dataset import export

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "echogen.json").is_file(), reason="this checkout has no embedded model"
)
SCENES = 12  # held-out seed 7: scenes 7, 9 and 11 name a colour × category twice


@pytest.fixture(scope="module")
def heldout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("alike") / "heldout"
    export(out, seed=7, count=SCENES, split="heldout")
    return out


def test_alike_objects_are_found_as_pairs(heldout: Path) -> None:
    model = EchoGen.load()
    report = alike_objects.measure(model, heldout, SCENES, ratios=(0.8, 0.5, 0.01))
    data = load_export(heldout)
    names = {c["id"]: c["name"] for c in data["categories"]}
    alike = 0
    for info in data["images"]:
        labels = Counter(object_label(a, names) for a in data["annotations"] if a["image_id"] == info["id"])
        alike += sum(n for n in labels.values() if n > 1)
    sentences = sum(len(r["sentences"]) for r in data["refs"] if not r["no_target"])
    assert report["scenes"] == SCENES and report["alike_objects"]["count"] == alike >= 4
    found = report["alike_objects"]
    assert found["found_one_query_each"] <= 0.5  # the same question for both of a pair: one answer
    assert found["found_by_ground_layout"] >= 0.75 > found["found_one_query_each"]
    flags = {float(r): rates for r, rates in report["ambiguity"].items()}
    assert list(flags) == [0.8, 0.5, 0.01]
    assert all(rates["expressions"]["count"] == sentences for rates in flags.values())
    assert flags[0.5]["expressions"]["accuracy_not_flagged"] >= 0.9
    several, one = [], []  # the bare-category rows by hand, through the public API
    for info in data["images"]:
        image = cv2.cvtColor(cv2.imread(str(heldout / "images" / info["file_name"])), cv2.COLOR_BGR2RGB)
        counts = Counter(names[a["category_id"]] for a in data["annotations"] if a["image_id"] == info["id"])
        for category, count in counts.items():
            flagged = is_ambiguous(model.ground(image, f"the {category}", top_k=2), 0.5)
            (several if count > 1 else one).append(flagged)
    assert flags[0.5]["bare_category_of_several"] == {"count": len(several), "flagged_ambiguous": np.mean(several)}
    assert flags[0.5]["bare_category_of_one"] == {"count": len(one), "flagged_ambiguous": np.mean(one)}


def test_bad_arguments_exit_non_zero(tmp_path: Path, capsys) -> None:
    main = alike_objects.main
    assert main(["--data", str(tmp_path)]) == 2
    assert "annotations.json" in capsys.readouterr().err
    assert main([str(tmp_path / "missing"), "--data", str(tmp_path)]) == 2
    for bad in (["--scenes", "0"], ["--ratios", "0"], ["--ratios", "1.5"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["--data", str(tmp_path), *bad])
        assert exit_info.value.code == 2
