"""Argument types shared by sub-commands: bounded integers with one-line error messages."""

from __future__ import annotations

import argparse


def bounded_int(lo: int, hi: int):
    """An argparse type accepting integers in [lo, hi]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside [{lo}, {hi}]")
        return value

    return parse
