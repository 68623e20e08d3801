"""`echogen`: the command-line entry point. Each sub-command lives in its own module here."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from echogen_ros.cli import bag, bench, demo, evaluate, export, model, plan, world
from echogen_ros.exits import OneLineParser, UsageError, run_reported

COMMANDS = (world, model, plan, bag, export, evaluate, bench, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="echogen", description="EchoGen for robots: ground and imagine tabletop scenes.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for module in COMMANDS:
        module.register(sub)
    return parser


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, so a half-written output is removed


def _run(args: argparse.Namespace) -> int:
    return args.run(args)


def main(argv: list[str] | None = None) -> int:
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if on_main_thread else None
    try:
        bad = (UsageError, ValueError, FileExistsError, FileNotFoundError)
        return run_reported("echogen", lambda: _run(build_parser().parse_args(argv)), bad)
    finally:
        if previous is not None:  # called in-process (tests, other tools): leave their handler as it was
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
