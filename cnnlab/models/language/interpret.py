"""Interpretable cells (Karpathy, Johnson & Fei-Fei 2015): hidden units that track simple features of the text.

For every character we compute features the network could be counting (inside quotes, position in
the line, indentation, bracket depth) and every hidden unit's value after reading it; the units with
the largest |Pearson r| with a feature are the candidates for "a quote-detection cell", and a heat
map of one unit over the text shows what it does.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch

from cnnlab.models.language.charlm import CharLM


def text_features(text: str) -> dict[str, np.ndarray]:
    """Per character (the state after reading it): inside "double quotes", position in line, indentation, bracket depth."""
    n = len(text)
    quote, pos, indent, depth = (np.zeros(n, dtype=np.float64) for _ in range(4))
    inside, col, lead, level, at_start = False, 0, 0, 0, True
    for i, ch in enumerate(text):
        if ch == "\n":
            col, lead, at_start = 0, 0, True
        else:
            col += 1
            if at_start and ch in " \t":
                lead += 1
            else:
                at_start = False
        if ch == '"':
            inside = not inside
        if ch in "([{":
            level += 1
        elif ch in ")]}":
            level = max(0, level - 1)
        quote[i], pos[i], indent[i], depth[i] = inside, col, lead, level
    return {"inside_quotes": quote, "position_in_line": pos, "indentation": indent, "inside_brackets": depth}


@torch.no_grad()
def hidden_activations(model: CharLM, ids: torch.Tensor, chunk: int = 512) -> np.ndarray:
    """(N, layers * H): every layer's h_t after each character, the state carried through the whole text."""
    model.eval()
    rnn, state, rows = model.rnn, None, []
    for a in range(0, len(ids), chunk):
        x = model.embedding(ids[a:a + chunk][None])  # (1, T, E)
        _, state, steps = rnn.unrolled(x, state, keep_steps=True)
        rows.append(torch.cat([torch.stack(layer, 1)[0] for layer in steps], dim=1))  # (T, L*H)
    return torch.cat(rows).numpy()


def correlate(acts: np.ndarray, features: dict[str, np.ndarray]) -> dict[str, dict]:
    """For each feature with any variation: the unit with the largest |r|, r itself, and the top-5 units."""
    a = acts - acts.mean(0)
    a_norm = np.sqrt((a ** 2).sum(0)) + 1e-12
    out = {}
    for name, f in features.items():
        f = f - f.mean()
        if not np.any(f):
            continue  # constant in this text (no quotes, no brackets): nothing to correlate with
        r = (a * f[:, None]).sum(0) / (a_norm * np.sqrt((f ** 2).sum()))
        order = np.argsort(-np.abs(r))
        out[name] = {"unit": int(order[0]), "r": float(r[order[0]]),
                     "top5": [[int(u), float(r[u])] for u in order[:5]]}
    return out


def heatmap_html(text: str, values: np.ndarray, title: str) -> str:
    """The text with every character's background coloured by a unit's value (blue lowest ... red highest)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    v = 2 * (values - lo) / max(hi - lo, 1e-12) - 1  # the unit's own range onto [-1, 1]
    spans = []
    for ch, x in zip(text, v):
        r, g, b = (255, int(255 * (1 - x)), int(255 * (1 - x))) if x > 0 else (int(255 * (1 + x)), int(255 * (1 + x)), 255)
        shown = "<br>" if ch == "\n" else ("&nbsp;" if ch == " " else html.escape(ch))
        spans.append(f'<span style="background:rgb({r},{g},{b})">{shown}</span>')
    return (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><h3>{html.escape(title)}</h3>"
            f"<div style='font-family:monospace;line-height:1.5'>{''.join(spans)}</div>")


def heatmap_png(text: str, values: np.ndarray, path: Path, title: str, cols: int = 90, max_lines: int = 30) -> None:
    """The same heat map as a picture: one cell per character, wrapped at ``cols``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines, cur, vals, cur_v = [], "", [], []
    for ch, x in zip(text, values):
        if ch == "\n" or len(cur) == cols:
            lines.append(cur), vals.append(cur_v)
            cur, cur_v = "", []
            if ch == "\n":
                continue
        cur += ch
        cur_v.append(x)
    lines.append(cur), vals.append(cur_v)
    lines, vals = lines[:max_lines], vals[:max_lines]
    grid = np.full((len(lines), cols), np.nan)
    for i, row in enumerate(vals):
        grid[i, :len(row)] = row
    lo, hi = (np.nanmin(grid), np.nanmax(grid)) if np.isfinite(grid).any() else (0.0, 1.0)
    fig, ax = plt.subplots(figsize=(cols * 0.13, len(lines) * 0.26 + 0.6))
    ax.imshow(grid, cmap="coolwarm", vmin=lo, vmax=hi, aspect="auto")  # the unit's own range: blue low, red high
    for i, line in enumerate(lines):
        for j, ch in enumerate(line):
            ax.text(j, i, ch, ha="center", va="center", fontsize=8, family="monospace")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
