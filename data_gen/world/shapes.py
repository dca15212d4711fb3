"""The world's content: 32 object classes drawn as anti-aliased masks.

Classes come in confusable families, as real categories do: round (circle, ellipse, ring, crescent,
semicircle, teardrop, cloud, flower), four-sided (square, rectangle, diamond, trapezoid,
parallelogram, kite), polygons (triangle, pentagon, hexagon, octagon, house, shield), stars (star,
sparkle, hexagram, gear), crosses (cross, x mark), and signs (heart, arrow, double arrow, chevron,
lightning bolt, hourglass). Every shape is given in unit coordinates (radius about 1) and placed with
a centre, a radius and a rotation.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 2
Points = list[tuple[float, float]]


def _regular(n: int, radius: float = 1.0, phase: float = -math.pi / 2) -> Points:
    return [(radius * math.cos(phase + 2 * math.pi * k / n), radius * math.sin(phase + 2 * math.pi * k / n))
            for k in range(n)]


def _star(points: int, inner: float) -> Points:
    outer, inside = _regular(points, 1.0), _regular(points, inner, -math.pi / 2 + math.pi / points)
    return [p for pair in zip(outer, inside) for p in pair]


def _curve(x, y, n: int = 48) -> Points:
    return [(x(2 * math.pi * k / n), y(2 * math.pi * k / n)) for k in range(n)]


def _heart() -> Points:
    def y(t: float) -> float:
        return -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t) + 2.5) / 17.0

    return _curve(lambda t: 16 * math.sin(t) ** 3 / 17.0, y)


def _rotated(points: Points, angle: float) -> Points:
    c, s = math.cos(angle), math.sin(angle)
    return [(x * c - y * s, x * s + y * c) for x, y in points]


def _gear(teeth: int = 8) -> Points:
    step = 2 * math.pi / (4 * teeth)
    radii = (1.0, 1.0, 0.74, 0.74)
    return [(radii[k % 4] * math.cos(k * step), radii[k % 4] * math.sin(k * step)) for k in range(4 * teeth)]


_CROSS = [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1),
          (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)]

POLYGONS: dict[str, Points] = {
    "ellipse": _curve(lambda t: math.cos(t), lambda t: 0.58 * math.sin(t)),
    "semicircle": [(math.cos(math.pi * k / 24), 0.42 - math.sin(math.pi * k / 24)) for k in range(25)],
    "teardrop": _curve(lambda t: 0.75 * math.sin(t) * math.sin(t / 2), lambda t: -math.cos(t)),
    "square": [(-0.82, -0.82), (0.82, -0.82), (0.82, 0.82), (-0.82, 0.82)],
    "rectangle": [(-1, -0.55), (1, -0.55), (1, 0.55), (-1, 0.55)],
    "diamond": [(0, -1), (0.65, 0), (0, 1), (-0.65, 0)],
    "trapezoid": [(-1, 0.6), (1, 0.6), (0.5, -0.6), (-0.5, -0.6)],
    "parallelogram": [(-1, 0.55), (0.45, 0.55), (1, -0.55), (-0.45, -0.55)],
    "kite": [(0, -1), (0.6, -0.3), (0, 1), (-0.6, -0.3)],
    "triangle": [(x, y + 0.2) for x, y in _regular(3, 1.1)],
    "pentagon": _regular(5),
    "hexagon": _regular(6, 1.0, 0.0),
    "octagon": _regular(8, 1.0, math.pi / 8),
    "house": [(-0.75, 0.9), (0.75, 0.9), (0.75, -0.1), (0, -0.95), (-0.75, -0.1)],
    "shield": [(-0.8, -0.9), (0.8, -0.9), (0.8, 0.1), (0, 1), (-0.8, 0.1)],
    "star": _star(5, 0.42),
    "sparkle": _star(4, 0.3),
    "hexagram": _star(6, 0.577),
    "gear": _gear(),
    "cross": _CROSS,
    "x mark": _rotated([(0.8 * x, 0.8 * y) for x, y in _CROSS], math.pi / 4),
    "heart": _heart(),
    "arrow": [(-1, -0.25), (0.15, -0.25), (0.15, -0.65), (1, 0), (0.15, 0.65), (0.15, 0.25), (-1, 0.25)],
    "double arrow": [(-1, 0), (-0.55, -0.6), (-0.55, -0.25), (0.55, -0.25), (0.55, -0.6), (1, 0), (0.55, 0.6),
                     (0.55, 0.25), (-0.55, 0.25), (-0.55, 0.6)],
    "chevron": [(-0.9, -0.8), (-0.2, -0.8), (0.6, 0), (-0.2, 0.8), (-0.9, 0.8), (-0.1, 0)],
    "lightning bolt": [(0.2, -1), (-0.55, 0.1), (-0.05, 0.1), (-0.25, 1), (0.55, -0.15), (0.05, -0.15)],
    "hourglass": [(-0.7, -1), (0.7, -1), (0.12, 0), (0.7, 1), (-0.7, 1), (-0.12, 0)],
}

# Unions (+1) and cut-outs (-1) of discs: (sign, dx, dy, radius) in unit coordinates, drawn in order.
DISCS: dict[str, list[tuple[int, float, float, float]]] = {
    "circle": [(1, 0, 0, 1)],
    "ring": [(1, 0, 0, 1), (-1, 0, 0, 0.58)],
    "crescent": [(1, 0, 0, 1), (-1, 0.5, 0, 0.85)],
    "cloud": [(1, -0.55, 0.25, 0.42), (1, 0.55, 0.25, 0.42), (1, -0.2, -0.1, 0.52), (1, 0.25, -0.2, 0.5),
              (1, 0, 0.3, 0.45)],
    "flower": [(1, 0.6 * math.cos(a), 0.6 * math.sin(a), 0.4) for a in np.linspace(0, 2 * math.pi, 7)[:-1]]
    + [(1, 0, 0, 0.45)],
}

SHAPES: tuple[str, ...] = (
    "circle", "ellipse", "ring", "crescent", "semicircle", "teardrop", "cloud", "flower",
    "square", "rectangle", "diamond", "trapezoid", "parallelogram", "kite",
    "triangle", "pentagon", "hexagon", "octagon", "house", "shield",
    "star", "sparkle", "hexagram", "gear", "cross", "x mark",
    "heart", "arrow", "double arrow", "chevron", "lightning bolt", "hourglass",
)


def _place(points: Points, cx: float, cy: float, radius: float, angle: float) -> Points:
    return [(cx + radius * x, cy + radius * y) for x, y in _rotated(points, angle)]


def shape_mask(shape: str, size: int, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    """Coverage in [0, 1] of `shape` centred at (cx, cy) px with the given radius and rotation."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape '{shape}'; known: {', '.join(SHAPES)}")
    ss = SUPERSAMPLE
    canvas = Image.new("L", (size * ss, size * ss), 0)
    draw = ImageDraw.Draw(canvas)
    if shape in POLYGONS:
        draw.polygon(_place(POLYGONS[shape], cx * ss, cy * ss, radius * ss, angle), fill=255)
    else:
        for sign, dx, dy, r in DISCS[shape]:
            (x, y), = _place([(dx, dy)], cx * ss, cy * ss, radius * ss, angle)
            rr = r * radius * ss
            draw.ellipse((x - rr, y - rr, x + rr, y + rr), fill=255 if sign > 0 else 0)
    return np.asarray(canvas.reduce(ss), dtype=np.float32) / 255.0
