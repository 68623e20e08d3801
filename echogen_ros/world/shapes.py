"""Each category as filled polygons in unit box coordinates (u, v in [0, 1], v down).

The parts of every shape together touch all four sides of the unit box, so the rendered object's
pixel extent is exactly its ground-truth box. Tones: body (the object's colour),
shade (darker), light (paler), dark (a fixed near-black for caps and stems).
"""

from __future__ import annotations

import numpy as np

Part = tuple[str, np.ndarray]  # (tone, (N, 2) float array of unit coordinates)


def _arc(cx: float, cy: float, ax: float, ay: float, deg0: float, deg1: float, n: int = 24) -> np.ndarray:
    t = np.radians(np.linspace(deg0, deg1, n))
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], axis=1)


def _poly(*points: tuple[float, float]) -> np.ndarray:
    return np.asarray(points, dtype=np.float64)


def _rect(u0: float, v0: float, u1: float, v1: float) -> np.ndarray:
    return _poly((u0, v0), (u1, v0), (u1, v1), (u0, v1))


def _ball() -> list[Part]:
    return [("body", _arc(0.5, 0.5, 0.5, 0.5, 0, 360, 40)), ("light", _arc(0.34, 0.32, 0.12, 0.1, 0, 360, 16))]


def _plate() -> list[Part]:
    return [
        ("body", _arc(0.5, 0.5, 0.5, 0.5, 0, 360, 48)),
        ("light", _arc(0.5, 0.5, 0.34, 0.3, 0, 360, 40)),
    ]


def _bowl() -> list[Part]:
    outline = np.concatenate([_arc(0.5, 0.3, 0.5, 0.3, 180, 360, 24), _arc(0.5, 0.3, 0.5, 0.7, 0, 180, 32)])
    return [("body", outline), ("shade", _arc(0.5, 0.3, 0.42, 0.2, 0, 360, 32))]


def _cup() -> list[Part]:
    outer = _arc(0.72, 0.45, 0.28, 0.28, -90, 90, 16)
    inner = _arc(0.72, 0.45, 0.15, 0.15, 90, -90, 16)
    handle = np.concatenate([outer, inner])
    body = _poly((0.0, 0.06), (0.76, 0.06), (0.68, 1.0), (0.08, 1.0))
    rim = _arc(0.38, 0.06, 0.38, 0.06, 0, 360, 24)
    return [
        ("shade", handle),
        ("body", body),
        ("light", rim),
        ("shade", _arc(0.38, 0.06, 0.3, 0.035, 0, 360, 20)),
    ]


def _bottle() -> list[Part]:
    outline = _poly(
        (0.0, 1.0), (0.0, 0.42), (0.28, 0.28), (0.3, 0.0), (0.7, 0.0), (0.72, 0.28), (1.0, 0.42), (1.0, 1.0)
    )
    return [
        ("body", outline),
        ("dark", _rect(0.3, 0.0, 0.7, 0.1)),
        ("light", _rect(0.0, 0.56, 1.0, 0.76)),
        ("shade", _rect(0.78, 0.44, 0.92, 0.96)),
    ]


def _block() -> list[Part]:
    outline = _poly((0.0, 0.25), (0.25, 0.0), (1.0, 0.0), (1.0, 0.75), (0.75, 1.0), (0.0, 1.0))
    return [
        ("body", outline),
        ("light", _poly((0.0, 0.25), (0.25, 0.0), (1.0, 0.0), (0.75, 0.25))),
        ("shade", _poly((0.75, 0.25), (1.0, 0.0), (1.0, 0.75), (0.75, 1.0))),
    ]


def _box() -> list[Part]:
    return [
        ("body", _rect(0.0, 0.0, 1.0, 1.0)),
        ("shade", _rect(0.0, 0.0, 1.0, 0.22)),
        ("light", _rect(0.44, 0.0, 0.56, 1.0)),
    ]


def _banana() -> list[Part]:
    outer = _arc(0.5, 0.0, 0.5, 1.0, 0, 180, 40)
    inner = _arc(0.5, 0.0, 0.4, 0.55, 180, 0, 32)
    return [
        ("body", np.concatenate([outer, inner])),
        ("dark", _rect(0.0, 0.0, 0.1, 0.12)),
        ("dark", _rect(0.9, 0.0, 1.0, 0.12)),
    ]


SHAPES: dict[str, list[Part]] = {
    "ball": _ball(),
    "plate": _plate(),
    "bowl": _bowl(),
    "cup": _cup(),
    "bottle": _bottle(),
    "block": _block(),
    "box": _box(),
    "banana": _banana(),
}
