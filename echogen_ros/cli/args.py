"""Argument types shared by sub-commands: bounded integers and probabilities, with one-line error messages."""

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


def probability(text: str) -> float:
    """An argparse type accepting a probability: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1]: a probability")
    return value
