"""The world's content: ten object classes drawn as anti-aliased masks."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 2


def _regular(n: int, radius: float = 1.0, phase: float = -math.pi / 2) -> list[tuple[float, float]]:
    return [(radius * math.cos(phase + 2 * math.pi * k / n), radius * math.sin(phase + 2 * math.pi * k / n))
            for k in range(n)]


def _star() -> list[tuple[float, float]]:
    outer, inner = _regular(5, 1.0), _regular(5, 0.42, -math.pi / 2 + math.pi / 5)
    return [p for pair in zip(outer, inner) for p in pair]


def _heart() -> list[tuple[float, float]]:
    pts = []
    for k in range(48):
        t = 2 * math.pi * k / 48
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((x / 17.0, -(y + 2.5) / 17.0))
    return pts


_CROSS = [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1),
          (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)]
_ARROW = [(-1, -0.25), (0.15, -0.25), (0.15, -0.65), (1, 0), (0.15, 0.65), (0.15, 0.25), (-1, 0.25)]
_TRIANGLE = [(x, y + 0.2) for x, y in _regular(3, 1.1)]
_SQUARE = [(-0.82, -0.82), (0.82, -0.82), (0.82, 0.82), (-0.82, 0.82)]

POLYGONS: dict[str, list[tuple[float, float]]] = {
    "square": _SQUARE,
    "triangle": _TRIANGLE,
    "star": _star(),
    "cross": _CROSS,
    "heart": _heart(),
    "hexagon": _regular(6, 1.0, 0.0),
    "arrow": _ARROW,
}
ROUND = ("circle", "ring", "crescent")
SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "cross", "heart", "crescent", "hexagon", "arrow", "ring",
)


def _place(points, cx: float, cy: float, radius: float, angle: float) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + radius * (x * c - y * s), cy + radius * (x * s + y * c)) for x, y in points]


def _ellipse(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: int) -> None:
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)


def shape_mask(shape: str, size: int, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    """Coverage in [0, 1] of `shape` centred at (cx, cy) px with the given radius and rotation."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape '{shape}'; known: {', '.join(SHAPES)}")
    ss = SUPERSAMPLE
    canvas = Image.new("L", (size * ss, size * ss), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy, r = cx * ss, cy * ss, radius * ss
    if shape in POLYGONS:
        draw.polygon(_place(POLYGONS[shape], cx, cy, r, angle), fill=255)
    elif shape == "circle":
        _ellipse(draw, cx, cy, r, 255)
    elif shape == "ring":
        _ellipse(draw, cx, cy, r, 255)
        _ellipse(draw, cx, cy, 0.58 * r, 0)
    else:  # crescent: a disc with an offset disc cut out, opening in the direction of `angle`
        _ellipse(draw, cx, cy, r, 255)
        _ellipse(draw, cx + 0.5 * r * math.cos(angle), cy + 0.5 * r * math.sin(angle), 0.85 * r, 0)
    return np.asarray(canvas.reduce(ss), dtype=np.float32) / 255.0
