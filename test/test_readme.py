"""Every command block of README.md runs, in order, as a reader would run them: in one fresh directory that
links the checkout's paths the README names (so "from the repository root" holds and nothing is written
into the real one), with `.venv/bin` on PATH and HOME, the export cache and runs/ inside it. Long commands run
in the short form `readme_blocks.CI_FORMS` gives; the ROS 2 blocks run in test/ros/test_readme_ros2.py
(`make ros-test`) and are only syntax-checked here; `readme_blocks.EXCEPTIONS` are not run, with a reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from readme_blocks import (
    CHECKOUT_LINKS,
    CI_FORMS,
    EXCEPTIONS,
    ROOT,
    ROS_BLOCKS,
    RUN_LANGUAGES,
    Block,
    check_tables,
    ci_form,
    entry,
    readme_blocks,
)

BLOCKS = readme_blocks()
RUN_HERE = [b for b in BLOCKS if b.language in RUN_LANGUAGES and entry(ROS_BLOCKS, b) is None
            and entry(EXCEPTIONS, b) is None]  # fmt: skip
BLOCK_TIMEOUT_S = 600  # a loaded 2-core machine; each block takes seconds to ~30 s unloaded


def _id(block: Block) -> str:
    return f"L{block.line}:{block.name[:40]}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory that looks like the repository root to the README's commands."""
    work = tmp_path_factory.mktemp("readme")
    for name in CHECKOUT_LINKS:
        target = Path(sys.prefix) if name == ".venv" else ROOT / name
        (work / name).symlink_to(target)
    (work / "home").mkdir()
    return work


def _env(work: Path) -> dict[str, str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "HOME": str(work / "home"), "ECHOGEN_CACHE": str(work / "cache"),
            "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}  # fmt: skip


def _run(block: Block, text: str, work: Path) -> subprocess.CompletedProcess:
    if block.language == "python":
        script = work / f"readme_block_{block.line}.py"
        script.write_text(text, encoding="utf-8")
        command = [sys.executable, str(script)]
    else:
        command = ["bash", "-euo", "pipefail", "-c", text]
    return subprocess.run(command, cwd=work, env=_env(work), capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT_S)  # fmt: skip


def test_every_block_is_run_or_listed() -> None:
    """One fence convention (the parser raises on others), every table entry names exactly one block, and a
    block that needs ROS 2 is run by the ROS suite or listed with a reason, never silently dropped."""
    assert check_tables(BLOCKS) == []
    for block in BLOCKS:
        needs_ros = any(word in block.text for word in ("ros2 ", "colcon ", "/opt/ros/"))
        if block.language in RUN_LANGUAGES and needs_ros:
            assert entry(ROS_BLOCKS, block) is not None or entry(EXCEPTIONS, block) is not None, (
                f"README.md:{block.line} needs ROS 2: add it to readme_blocks.ROS_BLOCKS (run by make ros-test)"
            )
    assert all(reason.strip() for reason in EXCEPTIONS.values())


def test_ros_blocks_parse() -> None:
    """The ROS 2 blocks (run for real by `make ros-test`) are at least valid bash in the form CI runs."""
    for block in BLOCKS:
        swaps = entry(ROS_BLOCKS, block)
        if swaps is not None:
            result = subprocess.run(["bash", "-n", "-c", ci_form(block, swaps)], capture_output=True, text=True)
            assert result.returncode == 0, f"README.md:{block.line}: {result.stderr}"


def test_parser_refuses_another_fence_language() -> None:
    with pytest.raises(ValueError, match="fence '```sh'"):
        readme_blocks("text\n```sh\nls\n```\n")
    with pytest.raises(ValueError, match="never closed"):
        readme_blocks("```bash\nls\n")
    assert [b.text for b in readme_blocks("```bash\nls\npwd\n```\n```text\nout\n```\n")] == ["ls\npwd", "out"]


@pytest.mark.parametrize("block", RUN_HERE, ids=[_id(b) for b in RUN_HERE])
def test_readme_block_runs(block: Block, workdir: Path) -> None:
    """The block, in its CI form where it has one, exits 0 (blocks run in README order in one directory)."""
    text = ci_form(block, entry(CI_FORMS, block) or ())
    result = _run(block, text, workdir)
    assert result.returncode == 0, (
        f"README.md:{block.line} exited {result.returncode}\n--- ran:\n{text}\n"
        f"--- stdout:\n{result.stdout[-3000:]}\n--- stderr:\n{result.stderr[-3000:]}"
    )
