"""Imports point down the layers of DESIGN.md: a package may import its own modules and those of the
layers below it, never one above (e.g. the model never calls into engines, the world never into the model)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "echogen_ros"
IMPORT = re.compile(r"^\s*(?:from|import)\s+echogen_ros\.(\w+)", re.MULTILINE)
# each layer → what it must never import (everything above it)
ABOVE = {
    "domain": {"world", "model", "engines", "planning", "evaluation", "runtime", "cli", "node", "bag", "demo"},
    "world": {"model", "engines", "planning", "evaluation", "runtime", "cli", "node", "bag", "demo"},
    "model": {"world", "engines", "planning", "evaluation", "runtime", "cli", "node", "bag", "demo"},
    "engines": {"planning", "evaluation", "runtime", "cli", "node", "bag", "demo"},
    "planning": {"world", "engines", "evaluation", "runtime", "cli", "node", "bag", "demo"},
    "runtime": {"cli", "node", "bag", "demo", "evaluation"},
}


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_imports_point_down(layer: str) -> None:
    wrong = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for target in IMPORT.findall(path.read_text(encoding="utf-8")):
            if target in ABOVE[layer]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)} imports echogen_ros.{target}")
    assert not wrong, "\n".join(wrong)
