"""How a command line ends: a bad input is one line on stderr and exit code 2 (an OSError too, as the last
resort: a read-only mount, a full disk), Ctrl-C is exit code 130 with nothing half-written kept. `echogen` and
`echogen-train`'s tools both end this way."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

BAD_INPUT_EXIT, INTERRUPTED_EXIT = 2, 130


class UsageError(Exception):
    """A bad argument: printed as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        raise UsageError(message)


def run_reported(prog: str, call: Callable[[], int | None], bad: tuple[type[BaseException], ...]) -> int:
    """`call()`'s exit code, or the one line and exit code for an exception of `bad`, an OSError or Ctrl-C."""
    try:
        return int(call() or 0)
    except bad as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return BAD_INPUT_EXIT
    except OSError as exc:
        print(f"{prog}: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return BAD_INPUT_EXIT
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing half-written was kept", file=sys.stderr)
        return INTERRUPTED_EXIT
