"""Where the objects and backgrounds of generated scenes come from, and how they are drawn.

Sprites (grey shading + alpha matte + label) from greyscale item sets (Fashion-MNIST, digits) or
drawn shapes (antialiased polygons); backgrounds = tinted crops of scikit-image's textures and
photos; clutter = short strokes and dots. ``cnnlab.data.scenes`` composes them into scenes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from cnnlab.errors import DataError

SHAPES = ("circle", "square", "triangle", "star", "cross")
SHAPES10 = SHAPES + ("ring", "crescent", "heart", "arrow", "diamond")
TEXTURES = ("brick", "grass", "gravel", "camera", "moon", "coins", "cell", "astronaut", "coffee", "chelsea", "rocket",
            "immunohistochemistry", "hubble_deep_field")


# ---------------------------------------------------------------------------- object sources
@dataclass
class Sprite:
    """An object before it is pasted: grey shading (h, w) in 0..1, alpha (h, w) in 0..1, label."""

    shade: np.ndarray
    alpha: np.ndarray
    label: int


class ItemPool:
    """Greyscale items with a background of 0 (Fashion-MNIST, digits): sprites at any size, cropped to the item."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        if len(images) == 0:
            raise DataError("no objects to paste in this split; use more source images")
        self.images, self.labels = images, labels

    def sample(self, rng: np.random.Generator, size: int) -> Sprite:
        i = int(rng.integers(len(self.images)))
        g = self.images[i].astype(np.float32) / 255.0  # (28, 28)
        ys, xs = np.nonzero(g > 0.05)
        if len(ys) == 0:
            return self.sample(rng, size)
        g = g[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        alpha = _fill_holes(g > 0.05).astype(np.float32)
        scale = size / max(g.shape)
        hw = (max(2, round(g.shape[1] * scale)), max(2, round(g.shape[0] * scale)))
        shade = _resize(g / max(float(g.max()), 1e-6), hw)
        return Sprite(0.55 + 0.45 * shade, np.clip(_resize(alpha, hw), 0, 1), int(self.labels[i]))


class ShapePool:
    """Shapes drawn at the size asked, antialiased (4x supersampled), lightly rotated."""

    def __init__(self, names: Sequence[str] = SHAPES):
        self.names = tuple(names)

    def sample(self, rng: np.random.Generator, size: int) -> Sprite:
        label = int(rng.integers(len(self.names)))
        alpha = draw_shape(self.names[label], size, rng)
        shade = 0.85 + 0.15 * rng.random((size, size)).astype(np.float32)
        return Sprite(shade, alpha, label)


def draw_shape(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Antialiased coverage (size, size) of a shape; ring and crescent are one disc minus another."""
    if name in ("ring", "crescent"):
        outer = shape_polygon("circle", size, rng)  # draws the turn, as every shape does
        r = size / 2
        inner = (outer - r) * (0.55 if name == "ring" else 0.8) + r
        if name == "crescent":
            turn = float(rng.uniform(0, 2 * np.pi))
            inner = inner + 0.42 * r * np.array([math.cos(turn), math.sin(turn)])
        return np.clip(draw_polygon(outer, size, size) - draw_polygon(inner, size, size), 0, 1)
    return draw_polygon(shape_polygon(name, size, rng), size, size)


def shape_polygon(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Vertices (V, 2) x, y of a shape filling a size x size box (a circle is a 64-gon)."""
    r = size / 2
    turn = float(rng.uniform(-0.35, 0.35))
    if name == "circle":
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif name == "square":
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * 0.72
    elif name == "triangle":
        t = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        pts = np.stack([np.cos(t), np.sin(t) + 0.2], 1)
    elif name == "star":
        t = -np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = np.stack([np.cos(t) * rad, np.sin(t) * rad + 0.08], 1)
    elif name == "cross":
        a, b = 0.3, 0.95
        pts = np.array([[-a, -b], [a, -b], [a, -a], [b, -a], [b, a], [a, a], [a, b], [-a, b], [-a, a], [-b, a], [-b, -a],
                        [-a, -a]], dtype=np.float64)
    elif name == "heart":
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        x, y = 16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        pts = np.stack([x / 17, (y + 2.5) / 15], 1)
    elif name == "arrow":
        pts = np.array([[-1, -0.25], [0.15, -0.25], [0.15, -0.7], [1, 0], [0.15, 0.7], [0.15, 0.25], [-1, 0.25]],
                       dtype=np.float64)
    elif name == "diamond":
        pts = np.array([[0, -1], [0.6, 0], [0, 1], [-0.6, 0]], dtype=np.float64)
    else:
        raise DataError(f"unknown shape {name!r}; choose one of {', '.join(SHAPES10)}")
    c, s = math.cos(turn), math.sin(turn)
    pts = pts @ np.array([[c, s], [-s, c]])
    return (pts * 0.98 + 1) * r


def draw_polygon(points: np.ndarray, width: int, height: int, supersample: int = 4) -> np.ndarray:
    """Antialiased coverage (height, width) in 0..1 of a polygon given in pixel-edge coordinates."""
    big = Image.new("L", (width * supersample, height * supersample), 0)
    ImageDraw.Draw(big).polygon([(float(x) * supersample, float(y) * supersample) for x, y in points], fill=255)
    return np.asarray(big.resize((width, height), Image.BOX), dtype=np.float32) / 255.0


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_fill_holes

    return binary_fill_holes(mask)


def _resize(a: np.ndarray, wh: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize(wh, Image.BILINEAR), dtype=np.float32)


# ---------------------------------------------------------------------------- backgrounds and clutter
class Backgrounds:
    """Crops of scikit-image's textures and photos, rescaled in luminance and tinted."""

    def __init__(self, names: Sequence[str] = TEXTURES):
        import skimage.data

        self.names = list(names)
        self.images = []
        for n in self.names:
            a = np.asarray(getattr(skimage.data, n)(), dtype=np.float32) / 255.0
            self.images.append(a if a.ndim == 2 else a[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32))

    def sample(self, rng: np.random.Generator, size: int, lum: tuple[float, float], saturation: float = 0.5):
        """(size, size, 3) float in 0..1 with luminance within ``lum``, and the texture's name."""
        k = int(rng.integers(len(self.images)))
        src = self.images[k]
        side = int(rng.uniform(0.25, 1.0) * min(src.shape))
        side = max(8, min(side, *src.shape))
        y, x = int(rng.integers(src.shape[0] - side + 1)), int(rng.integers(src.shape[1] - side + 1))
        crop = _resize(src[y:y + side, x:x + side], (size, size))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        lo, hi = np.percentile(crop, (2, 98))
        crop = np.clip((crop - lo) / max(hi - lo, 1e-3), 0, 1)
        grey = lum[0] + (lum[1] - lum[0]) * crop
        tint = _random_tint(rng, saturation)
        return np.clip(grey[..., None] * tint[None, None, :] / tint.mean(), 0, 1), self.names[k]


def _random_tint(rng: np.random.Generator, saturation: float) -> np.ndarray:
    import colorsys

    return np.asarray(colorsys.hsv_to_rgb(float(rng.random()), float(rng.uniform(0, saturation)), 1.0), dtype=np.float32)


def _item_colour(rng: np.random.Generator, dark: bool) -> np.ndarray:
    """An object colour of luminance far from a light (dark=True) or dark background."""
    import colorsys

    v = rng.uniform(0.12, 0.38) if dark else rng.uniform(0.8, 1.0)
    rgb = np.asarray(colorsys.hsv_to_rgb(float(rng.random()), float(rng.uniform(0, 0.8)), 1.0), dtype=np.float32)
    return rgb * v / max(float(rgb @ np.array([0.299, 0.587, 0.114])), 0.25) * (0.8 if dark else 1.0)


def add_clutter(canvas: np.ndarray, rng: np.random.Generator, count: int, longest: int) -> None:
    """Strokes and dots, none longer than ``longest`` pixels, drawn into the (H, W, 3) canvas."""
    h, w = canvas.shape[:2]
    for _ in range(count):
        layer = Image.new("L", (w * 2, h * 2), 0)
        d = ImageDraw.Draw(layer)
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        if rng.random() < 0.5:
            length, angle = rng.uniform(3, max(4, longest)), rng.uniform(0, np.pi)
            dx, dy = math.cos(angle) * length, math.sin(angle) * length
            d.line([(2 * x, 2 * y), (2 * (x + dx), 2 * (y + dy))], fill=255, width=int(rng.integers(1, 4)))
        else:
            r = rng.uniform(1, max(1.5, longest / 5))
            d.ellipse([2 * (x - r), 2 * (y - r), 2 * (x + r), 2 * (y + r)], fill=255)
        alpha = np.asarray(layer.resize((w, h), Image.BOX), dtype=np.float32)[..., None] / 255.0
        colour = np.asarray(_random_tint(rng, 1.0) * rng.uniform(0.1, 1.0), dtype=np.float32)
        canvas[:] = canvas * (1 - alpha * 0.8) + colour * alpha * 0.8
