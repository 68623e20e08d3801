"""Input limits, one table for every path (camera frames raw and compressed, CLI images, bag frames, layouts
from files, services and actions, texts). Sizes are checked before anything large is allocated: compressed
images from their header, layouts from their declared size.

Each limit is a field of `Limits`. A process starts with the defaults below, each overridable by the
environment variable of its name in capitals (`ECHOGEN_MAX_DECODED_PIXELS=100000000`); the node takes them
from its parameters of the same names (`limits.apply`) when it is configured."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace


def _limit(default: int, low: int, high: int, doc: str, node: bool = True):
    """A limit's default, range and description (`node`: also a parameter of the node)."""
    return field(default=default, metadata={"low": low, "high": high, "doc": doc, "node": node})


@dataclass(frozen=True)
class Limits:
    min_frame_side: int = _limit(16, 1, 4096, "smallest side of a frame to ground in (px)")
    max_frame_side: int = _limit(16384, 16, 65535, "largest side of a raw frame (px)")
    max_decoded_pixels: int = _limit(8192 * 8192, 256, 1 << 34, "pixels a compressed frame or image file decodes to")
    # camera JPEGs and PNGs expand 2-30 times, a blank 4K JPEG 190 times, a PNG bomb (one colour) 800-1,000 times
    max_expansion: int = _limit(500, 1, 1 << 20, "times its own bytes a compressed image over 1080p may decode to")
    max_layout_side: int = _limit(4096, 16, 65535, "a layout's width and height (px; 4K cameras fit)")
    max_imagined_side: int = _limit(1280, 16, 16384, "longer side of an imagined image; larger layouts are "
                                    "imagined scaled down (px)")  # fmt: skip
    max_text_chars: int = _limit(300, 1, 100_000, "characters of an instruction or expression")
    max_layout_file_bytes: int = _limit(1 << 20, 64, 1 << 30, "bytes of a layout JSON file", node=False)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            low, high = f.metadata["low"], f.metadata["high"]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"limit {f.name}={value!r} must be an integer in [{low}, {high}]")
        if self.min_frame_side > self.max_frame_side:
            raise ValueError(f"limit min_frame_side={self.min_frame_side} is over max_frame_side={self.max_frame_side}")

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Limits:
        """The defaults, each replaced by `ECHOGEN_<NAME>` where that is set."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            text = environ.get(env_name(f.name))
            if text is not None:
                if not text.isdigit():
                    raise ValueError(f"{env_name(f.name)}={text!r} must be a positive integer")
                values[f.name] = int(text)
        return cls(**values)

    def with_values(self, **values: int) -> Limits:
        return replace(self, **values)


FREE_DECODED_BYTES = 1920 * 1080 * 3  # a decoded image this small is never refused for its expansion
NODE_LIMITS = tuple(f for f in fields(Limits) if f.metadata["node"])  # the node's parameters of the same names


def env_name(name: str) -> str:
    return f"ECHOGEN_{name.upper()}"


def _from_environment() -> tuple[Limits, str | None]:
    try:
        return Limits.from_environment(), None
    except ValueError as exc:  # reported by the first use (`active`), not as a traceback at import
        return Limits(), f"{exc} (set in the environment)"


_active, _problem = _from_environment()


def active() -> Limits:
    """The limits this process applies; ValueError when the environment sets one badly."""
    if _problem is not None:
        raise ValueError(_problem)
    return _active


def starting() -> Limits:
    """What the process started with: the environment's limits where valid, else the defaults (the node's
    parameter defaults, which then replace them)."""
    return _active


def apply(limits: Limits) -> None:
    """Make `limits` the process's limits (the node, from its parameters)."""
    global _active, _problem
    _active, _problem = limits, None


def how_to_raise(name: str) -> str:
    """Where a refusal tells the user to raise limit `name`."""
    node = any(f.name == name for f in NODE_LIMITS)
    return f"raise with {env_name(name)}" + (f" or the node's {name} parameter" if node else "")


def text_problem(text: object, what: str, limit: int | None = None) -> str | None:
    """Why `text` cannot be an instruction or expression (empty, over `limit` characters (default: the
    active limit), control characters), or None when it can."""
    limit = active().max_text_chars if limit is None else limit
    if not isinstance(text, str) or not text.strip():
        return f"empty {what} ignored"
    if len(text) > limit:
        return f"{what} of {len(text)} characters ignored (limit {limit}; {how_to_raise('max_text_chars')})"
    if any(ord(c) < 32 and c not in "\t\n" for c in text):
        return f"{what} with control characters ignored"
    return None
