"""README.md's command blocks and how CI runs each: read by test/test_readme.py (every block that needs no
ROS, under `make test`) and test/ros/test_readme_ros2.py (the ROS 2 blocks, under `make ros-test`).

A block is a fenced ```bash or ```python block (```text is shown output, never run; any other fence is an
error, so there is one convention). Blocks are named by their first line. A block runs as written unless a
table below names it (by the start of its first line): `CI_FORMS` swaps text for a short version (each swapped
text must be in the block, so the table cannot drift from the README), `ROS_BLOCKS` are run by the ROS suite
(with their swaps), `EXCEPTIONS` are not run, each with its reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUN_LANGUAGES = ("bash", "python")
SHOWN_LANGUAGES = ("text",)
FENCE = re.compile(r"^```(\S*)\s*$")

# The paths of a checkout that README commands name relative to the repository root; the test's working
# directory links them, so a block runs "from the repository root" without writing into the real one.
CHECKOUT_LINKS = (".venv", "echogen_ros", "training", "config", "Makefile", "setup.py", "pyproject.toml")

CI_FORMS: dict[str, tuple[tuple[str, str], ...]] = {
    # `make test` is the suite that runs this test; `make -n demo` checks that `make demo` runs the
    # `echogen demo` command that the command-line block runs (grep reads all of make's output: `grep -q` stops
    # at the match, and under pipefail make's SIGPIPE failed the block, 141, in CI on 2026-12-06)
    "make demo ": (
        ("make demo ", "make -n demo | grep -F 'echogen demo --out demo_out' >/dev/null "),
        ("make test ", ": "),
    ),
    "echogen demo --out demo_out": (
        ("echogen demo --out demo_out", "echogen demo --scenes 1 --out demo_out"),
        ("--count 200", "--count 2"),
        ("--imagine-limit 60", "--limit 1 --imagine-limit 1"),
        ("--iterations 200", "--iterations 5 --imagine-iterations 1"),
    ),
    # an ONNX export takes ~25 s whatever the model; the tiny preset keeps the rest of the block quick
    "echogen model-init --preset tabletop": (("--preset tabletop", "--preset tiny"),),
    # 2 steps of the stage on a tiny model: a step of the embedded model takes ~10 s on 2 cores
    "echogen-train pmtp --config": (
        ("model.init=echogen_ros/model/default", "model.init=tiny"),
        ("optim.max_steps=3000", "optim.max_steps=2 optim.warmup_steps=1 data.batch_size=2 eval.every=0"),
        ("--limit 20", "--limit 1 --imagine-limit 1"),
    ),
}

ROS_BLOCKS: dict[str, tuple[tuple[str, str], ...]] = {
    # colcon test has sourced ROS 2 (and this machine's overlay) already; the clone is this checkout
    "source /opt/ros/humble/setup.bash": (
        ("source /opt/ros/humble/setup.bash", "true"),
        ("git clone https://github.com/YOU/echogen_ros.git echogen_ros", 'ln -s "$README_REPO" echogen_ros'),
    ),
    "ros2 launch echogen_ros bringup.launch.py": (),
    "ros2 bag info grounded/": (),
}

EXCEPTIONS: dict[str, str] = {
    "training/scripts/train_tabletop.sh": (
        "the whole pipeline: hours on a CPU, a GPU budget, 8 GPUs and a Janus-Pro-1B download. Its stages are the "
        "`echogen-train STAGE` command the block before runs (run here), and training/tests run every stage, "
        "FSDP and 2-process torchrun for a few steps"
    ),
}


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int  # of the opening fence, 1-based

    @property
    def name(self) -> str:
        return self.text.splitlines()[0] if self.text else ""


def readme_blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of the README in order; a fence without a language or of another one is an error."""
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks, opened, body = [], None, []
    for number, line in enumerate(lines, 1):
        match = FENCE.match(line)
        if opened is None and match:
            language = match.group(1)
            if language not in RUN_LANGUAGES + SHOWN_LANGUAGES:
                allowed = ", ".join(RUN_LANGUAGES + SHOWN_LANGUAGES)
                raise ValueError(f"README.md:{number}: fence '```{language}': use one of {allowed}")
            opened, body = (language, number), []
        elif opened is not None and line.startswith("```"):
            blocks.append(Block(opened[0], "\n".join(body), opened[1]))
            opened = None
        elif opened is not None:
            body.append(line)
    if opened is not None:
        raise ValueError(f"README.md:{opened[1]}: block never closed")
    return blocks


def ci_form(block: Block, swaps: tuple[tuple[str, str], ...]) -> str:
    """The block with each (written, run) swap applied; a swap whose text is not in the block is an error."""
    text = block.text
    for written, run in swaps:
        if written not in text:
            raise ValueError(f"README.md:{block.line}: the CI form swaps {written!r}, which the block no longer has")
        text = text.replace(written, run)
    return text


def entry(table: dict, block: Block):
    """The table's entry for the block (its key starts the block's first line), or None."""
    keys = [key for key in table if block.name.startswith(key)]
    return table[keys[0]] if keys else None


def check_tables(blocks: list[Block]) -> list[str]:
    """What is wrong with the tables: a key matching no block or several, a block in two tables."""
    problems = []
    tables = {"CI_FORMS": CI_FORMS, "ROS_BLOCKS": ROS_BLOCKS, "EXCEPTIONS": EXCEPTIONS}
    for table_name, table in tables.items():
        for key in table:
            found = [b.line for b in blocks if b.language in RUN_LANGUAGES and b.name.startswith(key)]
            if len(found) != 1:
                problems.append(f"{table_name}[{key!r}] matches {len(found)} README blocks (lines {found})")
    for block in blocks:
        listed = [name for name, table in tables.items() if entry(table, block) is not None]
        if len(listed) > 1:
            problems.append(f"README.md:{block.line} is in {listed}")
    return problems
