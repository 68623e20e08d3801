"""Tools for trained models, run as `echogen-train TOOL ...` beside the training stages: one module per tool,
each with `add_arguments(parser)` and `run(args) -> int`. A bad input is one line on stderr and exit code 2;
a tool writes its output directory all at once (echogen_ros.outputs), so a failure leaves nothing half-written.
"""

from __future__ import annotations

import importlib

from echogen_ros.exits import OneLineParser, UsageError, run_reported

TOOLS = {
    "transplant-tokenizer": "echogen_training.tools.transplant_tokenizer",
    "transplant-vision": "echogen_training.tools.transplant_vision",
    "grow-vision": "echogen_training.tools.grow_vision",
    "separate-decoder": "echogen_training.tools.separate_decoder",
    "ship": "echogen_training.tools.ship",
    "fit-domain": "echogen_training.tools.fit_domain",
    "calibrate": "echogen_training.tools.calibrate",
    "calibrate-inventory": "echogen_training.tools.calibrate_inventory",
}  # imported only when run: `echogen-train STAGE --print-config` stays quick


def main(name: str, argv: list[str]) -> int:
    """Run the tool `name` (a key of TOOLS) on its arguments."""
    module = importlib.import_module(TOOLS[name])
    parser = OneLineParser(prog=f"echogen-train {name}", description=module.__doc__.split("\n\n")[0])
    module.add_arguments(parser)
    bad = (UsageError, ValueError, FileNotFoundError)  # CheckpointError and OutputError included
    return run_reported("echogen-train", lambda: module.run(parser.parse_args(argv)), bad)
