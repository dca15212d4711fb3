"""The world's style: how each image type and art style draws an object mask.

Every function works on float images in [0, 1] of shape (S, S, 3) and draws from the given
numpy Generator only, so a render is fully determined by its seed.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.12),
    "blue": (0.12, 0.25, 0.86),
    "green": (0.12, 0.63, 0.16),
    "yellow": (0.95, 0.86, 0.12),
    "purple": (0.52, 0.16, 0.67),
    "orange": (0.96, 0.55, 0.08),
    "black": (0.07, 0.07, 0.07),
    "white": (0.98, 0.98, 0.98),
    "brown": (0.47, 0.27, 0.12),
}
MULTICOLORED = "multicolored"


@dataclass(frozen=True)
class Layout:
    """Where the object sits, in pixels."""

    cx: float
    cy: float
    radius: float
    angle: float


def smooth_noise(rng: np.random.Generator, size: int, cells: int, aspect: int = 1) -> np.ndarray:
    """Value noise in [0, 1]: a cells x (cells*aspect) random grid upsampled bilinearly."""
    grid = rng.random((cells * aspect, cells), dtype=np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((size, size), Image.BILINEAR))


def colour_field(colour: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """The object's paint: a solid colour, or rainbow stripes for 'multicolored'."""
    if colour != MULTICOLORED:
        return np.broadcast_to(np.array(COLOURS[colour], np.float32), (size, size, 3))
    theta = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = (xx * np.cos(theta) + yy * np.sin(theta)) / rng.uniform(6.0, 9.0) + rng.random()
    band = np.floor(phase).astype(int) % 6
    palette = np.array([colorsys.hsv_to_rgb(h / 6, 0.9, 0.95) for h in range(6)], np.float32)
    return palette[band]


def _shift_max(mask: np.ndarray, radius: int) -> np.ndarray:
    out = mask.copy()
    for axis in (0, 1):
        base = out.copy()
        for d in range(1, radius + 1):
            out = np.maximum(out, np.roll(base, d, axis))
            out = np.maximum(out, np.roll(base, -d, axis))
    return out


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grey-level dilation by a (2r+1) square."""
    return _shift_max(mask, radius)


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grey-level erosion by a (2r+1) square."""
    return 1.0 - _shift_max(1.0 - mask, radius)


def _over(background: np.ndarray, paint: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return background * (1.0 - alpha[..., None]) + paint * alpha[..., None]


def _muted(rng: np.random.Generator, lo: float, hi: float, grey_mix: float) -> np.ndarray:
    tint = rng.uniform(lo, hi, 3).astype(np.float32)
    return (1 - grey_mix) * tint + grey_mix * tint.mean()


def _shading(layout: Layout, size: int, strength: float) -> np.ndarray:
    """Lambert-like gradient lit from the upper left of the object."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    g = ((xx - layout.cx) + (yy - layout.cy)) / (1.41 * layout.radius)
    return np.clip(1.0 - strength * g, 0.45, 1.35)[..., None]


def photograph(mask, paint, layout, rng, size):
    """Shaded object with a soft shadow on a textured, muted background, plus sensor noise."""
    base = _muted(rng, 0.25, 0.85, 0.5)
    bg = base * (0.75 + 0.5 * smooth_noise(rng, size, 4))[..., None]
    bg = bg + 0.08 * (smooth_noise(rng, size, 16)[..., None] - 0.5)
    shadow = np.roll(mask, (2, 2), axis=(0, 1))
    bg = bg * (1.0 - 0.45 * shadow)[..., None]
    img = _over(bg, paint * _shading(layout, size, 0.35), mask)
    return img + rng.normal(0, 0.025, img.shape).astype(np.float32)


def painting(mask, paint, layout, rng, size):
    """Brush-stroke texture over a coloured canvas: streaky light and colour variation."""
    canvas = _muted(rng, 0.2, 0.9, 0.3)
    img = _over(np.broadcast_to(canvas, paint.shape), paint, mask)
    strokes = smooth_noise(rng, size, 5, aspect=6)
    angle = rng.uniform(0, 180)
    strokes = np.asarray(Image.fromarray(strokes, mode="F").rotate(angle, Image.BILINEAR, fillcolor=0.5))
    tint = np.stack([smooth_noise(rng, size, 6, aspect=4) for _ in range(3)], -1)
    return img * (0.75 + 0.5 * strokes)[..., None] + 0.12 * (tint - 0.5)


def _is_light(paint: np.ndarray) -> bool:
    """White paint, which needs a darker ground to stay visible."""
    return float(paint.mean()) > 0.85


def sketch(mask, paint, layout, rng, size):
    """Thin coloured-pencil outline and diagonal hatching on paper (toned grey paper for white pencil)."""
    tone = np.array([0.45, 0.47, 0.5] if _is_light(paint) else [0.94, 0.91, 0.85], np.float32)
    paper = tone + 0.03 * (smooth_noise(rng, size, 8)[..., None] - 0.5)
    outline = np.clip(mask - erode(mask, 1), 0, 1)
    yy, xx = np.mgrid[0:size, 0:size]
    step = int(rng.integers(3, 5))
    hatch = (((xx + yy) % step) == 0).astype(np.float32) * mask * 0.7
    pencil = 0.8 * paint + 0.2 * np.float32(0.15)
    img = _over(np.broadcast_to(paper, paint.shape), pencil, np.clip(outline + hatch, 0, 1))
    return img + rng.normal(0, 0.01, img.shape).astype(np.float32)


def cartoon(mask, paint, layout, rng, size):
    """Flat fill with a thick black outline on a two-tone pastel scene."""
    sky, ground = 0.7 + 0.3 * rng.random(3, dtype=np.float32), 0.6 + 0.3 * rng.random(3, dtype=np.float32)
    horizon = int(rng.integers(size // 2, size - 4))
    bg = np.empty((size, size, 3), np.float32)
    bg[:horizon], bg[horizon:] = sky, ground
    ink = np.clip(dilate(mask, 2), 0, 1)
    img = _over(bg, np.zeros(3, np.float32), ink)
    return _over(img, paint, erode(mask, 0))


def clipart(mask, paint, layout, rng, size):
    """Flat fill on a plain near-white background (mid grey behind white objects)."""
    bg = np.float32(rng.uniform(0.45, 0.65) if _is_light(paint) else rng.uniform(0.93, 1.0)) * np.ones(3, np.float32)
    return _over(np.broadcast_to(bg, paint.shape), paint, mask)


def infograph(mask, paint, layout, rng, size):
    """Object among chart decorations: bars, axes and label lines (on a dark board behind white objects)."""
    dark = _is_light(paint)
    board_rgb = rng.integers(60, 95, 3) if dark else rng.integers(225, 250, 3)
    ink = (200, 205, 215) if dark else (65, 70, 80)
    board = Image.new("RGB", (size, size), tuple(int(v) for v in board_rgb))
    draw = ImageDraw.Draw(board)
    left = int(rng.integers(2, size // 3))
    bottom = size - int(rng.integers(3, 8))
    draw.line((left, bottom, size - 3, bottom), fill=ink)
    draw.line((left, bottom, left, bottom - size // 2), fill=ink)
    for k in range(int(rng.integers(3, 6))):
        x0 = left + 3 + 6 * k
        top = bottom - int(rng.integers(4, size // 2))
        shade = tuple(int(v) for v in rng.integers(90, 170, 3))
        draw.rectangle((x0, top, x0 + 3, bottom - 1), fill=shade)
    for k in range(int(rng.integers(2, 4))):
        y0 = 3 + 4 * k
        draw.rectangle((3, y0, 3 + int(rng.integers(10, size - 10)), y0 + 1), fill=ink)
    bg = np.asarray(board, np.float32) / 255.0
    return _over(bg, paint, mask)


def mosaic_art(mask, paint, layout, rng, size):
    """Small square tiles with colour jitter and dark grout lines."""
    flat = _over(np.broadcast_to(_muted(rng, 0.3, 0.9, 0.4), paint.shape), paint, mask)
    tile = 3 if size <= 64 else 4
    n = size // tile
    tiles = flat[: n * tile, : n * tile].reshape(n, tile, n, tile, 3).mean(axis=(1, 3))
    tiles = tiles * (1.0 + 0.08 * rng.standard_normal((n, n, 1)).astype(np.float32))
    img = np.repeat(np.repeat(tiles, tile, 0), tile, 1)
    img = np.pad(img, ((0, size - n * tile), (0, size - n * tile), (0, 0)), mode="edge")
    grout = np.zeros((size, size), bool)
    grout[::tile, :] = True
    grout[:, ::tile] = True
    img[grout] = 0.3
    return img


def sculpture(mask, paint, layout, rng, size):
    """A stone-grey, tinted, strongly lit object on a pedestal in a dark studio."""
    yy = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    bg = np.broadcast_to((0.18 + 0.3 * yy) * (0.85 + 0.3 * rng.random(3, dtype=np.float32)), paint.shape)
    ped = np.zeros((size, size), np.float32)
    top = int(min(size - 4, layout.cy + 0.9 * layout.radius))
    half = max(3, int(0.7 * layout.radius))
    x0, x1 = int(max(0, layout.cx - half)), int(min(size, layout.cx + half))
    ped[top:, x0:x1] = 1.0
    stone = np.array([0.72, 0.69, 0.64], np.float32)
    img = _over(bg, stone * np.linspace(1.1, 0.7, size, dtype=np.float32)[None, :, None], ped)
    marble = 0.55 * np.float32(0.62) + 0.45 * paint
    lit = marble * _shading(layout, size, 0.6)
    return _over(img, lit, mask)


IMAGE_TYPES = {
    "painting": painting,
    "sketch": sketch,
    "cartoon": cartoon,
    "clipart": clipart,
    "photograph": photograph,
    "infograph": infograph,
    "mosaic art": mosaic_art,
    "sculpture": sculpture,
}


def impressionistic(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Loose rendering: wobbly displaced edges, blotchy colour dabs and a slight blur."""
    size = img.shape[0]
    shift = 2.0
    dx = np.rint(shift * (2 * smooth_noise(rng, size, 6) - 1)).astype(int)
    dy = np.rint(shift * (2 * smooth_noise(rng, size, 6) - 1)).astype(int)
    yy, xx = np.mgrid[0:size, 0:size]
    img = img[np.clip(yy + dy, 0, size - 1), np.clip(xx + dx, 0, size - 1)]
    dabs = rng.standard_normal((size // 4, size // 4, 3)).astype(np.float32)
    img = img + 0.05 * np.repeat(np.repeat(dabs, 4, 0), 4, 1)[:size, :size]
    pil = Image.fromarray(np.clip(img * 255, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))
    return np.asarray(pil, np.float32) / 255.0


ART_STYLES = {"realistic": None, "impressionistic": impressionistic}
