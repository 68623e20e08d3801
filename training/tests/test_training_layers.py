"""The training package's imports point down: data below the stages, the stages below the loop, the tools
and the command line on top; the model package (echogen_ros) never imports training."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "training" / "echogen_training"
TOP_LEVEL = re.compile(r"^(?:from|import)\s+echogen_training\.(\w+)", re.MULTILINE)  # module level only
ABOVE = {  # part of the package → what it must never import at module level
    "data": {"stages", "loop", "budget", "fsdp_state", "evaluate", "cli", "tools", "bench"},
    "stages": {"loop", "budget", "fsdp_state", "cli", "tools", "bench"},
    "config.py": {"stages", "loop", "data", "cli", "tools"},  # it asks the stage at load time, lazily
    "loop.py": {"cli", "tools", "bench"},
}


@pytest.mark.parametrize("part", sorted(ABOVE))
def test_training_imports_point_down(part: str) -> None:
    paths = [PACKAGE / part] if part.endswith(".py") else sorted((PACKAGE / part).rglob("*.py"))
    wrong = [
        f"{p.relative_to(ROOT)} imports echogen_training.{target}"
        for p in paths
        for target in TOP_LEVEL.findall(p.read_text(encoding="utf-8"))
        if target in ABOVE[part]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_product_never_imports_training() -> None:
    wrong = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "echogen_ros").rglob("*.py"))
        if re.search(r"^\s*(?:from|import)\s+echogen_training\b", p.read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert not wrong, wrong
