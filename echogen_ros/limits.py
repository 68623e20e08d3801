"""Input limits, one table for every path (camera frames raw and compressed, CLI images, bag frames, layouts
from files, services and actions, texts). Sizes are checked before anything large is allocated: compressed
images from their header, layouts from their declared size. Raise a limit for a whole process with the
environment variable of the same name, e.g. `ECHOGEN_MAX_DECODED_PIXELS=100000000`."""

from __future__ import annotations

import os


def _limit(name: str, default: int) -> int:
    value = os.environ.get(f"ECHOGEN_{name}")
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"ECHOGEN_{name}={value!r} must be a positive integer")
    return int(value)


MIN_FRAME_SIDE = _limit("MIN_FRAME_SIDE", 16)  # smaller frames hold nothing to ground (and break the resize)
MAX_FRAME_SIDE = _limit("MAX_FRAME_SIDE", 16384)  # pixels, either side of a raw frame
MAX_DECODED_PIXELS = _limit("MAX_DECODED_PIXELS", 8192 * 8192)  # a compressed image or image file, decoded
MAX_LAYOUT_SIDE = _limit("MAX_LAYOUT_SIDE", 4096)  # a layout's width and height: the imagined image (50 MB at most)
MAX_TEXT_CHARS = _limit("MAX_TEXT_CHARS", 300)  # an instruction or a referring expression
MAX_LAYOUT_FILE_BYTES = _limit("MAX_LAYOUT_FILE_BYTES", 1 << 20)  # a layout JSON file


def text_problem(text: object, what: str, limit: int = MAX_TEXT_CHARS) -> str | None:
    """Why `text` cannot be an instruction or expression (empty, over `limit` characters, control
    characters), or None when it can."""
    if not isinstance(text, str) or not text.strip():
        return f"empty {what} ignored"
    if len(text) > limit:
        return f"{what} of {len(text)} characters ignored (limit {limit}, ECHOGEN_MAX_TEXT_CHARS)"
    if any(ord(c) < 32 and c not in "\t\n" for c in text):
        return f"{what} with control characters ignored"
    return None
