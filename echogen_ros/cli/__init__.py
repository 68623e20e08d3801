"""`echogen`: the command-line entry point. Each sub-command lives in its own module here."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from echogen_ros.cli import bag, bench, demo, evaluate, export, model, plan, world


class CliError(Exception):
    """A bad input: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        raise CliError(message)


COMMANDS = (world, model, plan, bag, export, evaluate, bench, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="echogen", description="EchoGen for robots: ground and imagine tabletop scenes.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in COMMANDS:
        module.register(sub)
    return parser


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, so a half-written output is removed


def main(argv: list[str] | None = None) -> int:
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if on_main_thread else None
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except (CliError, ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"echogen: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the last resort (a read-only mount, a full disk): one line, not a traceback
        print(f"echogen: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("echogen: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    finally:
        if previous is not None:  # called in-process (tests, other tools): leave their handler as it was
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
