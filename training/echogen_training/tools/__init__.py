"""Tools for trained models, run as `echogen-train TOOL ...` beside the training stages: one module per tool,
each with `add_arguments(parser)` and `run(args) -> int`. A bad input is one line on stderr and exit code 2;
a tool writes its output directory all at once (echogen_ros.outputs), so a failure leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import importlib
import sys

TOOLS = {
    "transplant-tokenizer": "echogen_training.tools.transplant_tokenizer",
    "transplant-vision": "echogen_training.tools.transplant_vision",
    "ship": "echogen_training.tools.ship",
}  # imported only when run: `echogen-train STAGE --print-config` stays quick


class UsageError(Exception):
    """A bad argument: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        raise UsageError(message)


def main(name: str, argv: list[str]) -> int:
    """Run the tool `name` (a key of TOOLS) on its arguments."""
    module = importlib.import_module(TOOLS[name])
    parser = _Parser(prog=f"echogen-train {name}", description=module.__doc__.split("\n\n")[0])
    module.add_arguments(parser)
    try:
        return module.run(parser.parse_args(argv))
    except (UsageError, ValueError, FileNotFoundError) as exc:  # CheckpointError and OutputError included
        print(f"echogen-train: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the last resort (a read-only mount, a full disk): one line, not a traceback
        print(f"echogen-train: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("echogen-train: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
