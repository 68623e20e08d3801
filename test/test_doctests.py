"""The examples in the package's docstrings (`>>>`) run as written: every module of echogen_ros that has one."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "echogen_ros"
WITH_EXAMPLES = sorted(
    ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    for path in PACKAGE.rglob("*.py")
    if ">>>" in path.read_text(encoding="utf-8")
)


def test_the_examples_are_found() -> None:
    assert "echogen_ros.model.category_check" in WITH_EXAMPLES and len(WITH_EXAMPLES) >= 9


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_a_modules_examples_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, f"{name}: {result.failed} of {result.attempted} failed"
