"""Activation maps: what each channel of a layer responds to in one image (a grid of channels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnlab.errors import ConfigError
from cnnlab.explain.common import Subject, activation, image_grid, normalize01


def layer_activations(subject: Subject, x: torch.Tensor, layer: str) -> np.ndarray:
    """(C, h, w) output of ``layer`` for x (1, C, H, W)."""
    a = activation(subject, x, layer)
    if a.ndim != 4:
        raise ConfigError(f"--layer {layer}: its output has shape {tuple(a.shape)}; activation maps need a (B, C, h, w) layer")
    return a[0].numpy().copy()


def activations_figure(a: np.ndarray, path: str | Path, layer: str, limit: int = 64) -> Path:
    """The ``limit`` channels with the largest mean activation, each min-max scaled (titles: channel index)."""
    order = np.argsort(-a.reshape(len(a), -1).mean(1))[:limit]
    return image_grid([normalize01(a[i]) for i in order], path, cols=8, titles=[str(i) for i in order],
                      title=f"{layer}: {len(order)} of {len(a)} channels ({a.shape[1]}x{a.shape[2]}), most active first",
                      cmap="viridis", cell=1.0)
