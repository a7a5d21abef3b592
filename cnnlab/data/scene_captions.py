"""Template captions of generated caption scenes: true sentences about shapes, colours and places."""

from __future__ import annotations

from typing import Sequence

import numpy as np

SHAPE_PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars", "cross": "crosses"}


# ---------------------------------------------------------------------------- captions
NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def _where(x: float, y: float, size: int) -> str:
    v = "top" if y < size / 3 else "bottom" if y > 2 * size / 3 else ""
    h = "left" if x < size / 3 else "right" if x > 2 * size / 3 else ""
    return f"{v} {h}".strip() or "centre"


def _relation(a: tuple[float, float], b: tuple[float, float]) -> str:
    dx, dy = b[0] - a[0], b[1] - a[1]
    if abs(dx) >= abs(dy):
        return "to the left of" if dx > 0 else "to the right of"
    return "above" if dy > 0 else "below"


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def make_captions(shapes: Sequence[str], colours: Sequence[str], centres, size: int, texture: str,
                  rng: np.random.Generator, count: int = 5) -> list[str]:
    """``count`` different true sentences about the shapes, their colours, places and the background."""
    things = [f"{c} {s}" for c, s in zip(colours, shapes)]
    n = len(things)
    cands: list[str] = []
    if n == 1:
        t, (x, y) = things[0], centres[0]
        cands += [f"{_a(t)} on {texture}", _a(t), f"one {t} on a {texture} background", f"a {shapes[0]} that is {colours[0]}",
                  f"{_a(t)} in the {_where(x, y, size)} of the picture", f"a single {shapes[0]} on {texture}"]
    else:
        listing = ", ".join(_a(t) for t in things[:-1]) + f" and {_a(things[-1])}"
        cands += [f"{listing} on {texture}", f"{NUMBERS[n]} shapes on {texture}", listing,
                  f"{_a(things[0])} {_relation(centres[0], centres[1])} {_a(things[1])}",
                  f"{_a(things[1])} {_relation(centres[1], centres[0])} {_a(things[0])}",
                  f"{NUMBERS[n]} shapes on a {texture} background: {listing}"]
        kinds = {s: shapes.count(s) for s in shapes}
        cands += [f"{NUMBERS[k]} {SHAPE_PLURALS[s] if k > 1 else s}" + (" on " + texture if k == n else "")
                  for s, k in kinds.items() if k > 1]
    order = rng.permutation(len(cands))
    return [cands[i] for i in order[:count]]
