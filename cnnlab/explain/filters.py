"""First-layer filters as pictures (the course's AlexNet figure): each filter's weights, min-max scaled.

A first conv layer sees pixels directly, so its (C_in, k, k) weights are small images: oriented edges and
colour blobs in a trained network, noise in an untrained one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.explain.common import image_grid, normalize01


def first_conv(model: nn.Module, layer: str | None = None) -> tuple[str, nn.Conv2d]:
    """(name, module) of ``layer`` or of the first nn.Conv2d in ``model.named_modules()``."""
    from cnnlab.explain.common import get_layer

    if layer:
        m = get_layer(model, layer)
        if not isinstance(m, nn.Conv2d):
            raise ConfigError(f"--layer {layer} is a {type(m).__name__}; filters are drawn for Conv2d layers")
        return layer, m
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    raise ConfigError("this model has no Conv2d layer; its first layer has no filters to draw (try --method saliency)")


def first_layer_filters(model: nn.Module, layer: str | None = None) -> np.ndarray:
    """(N, C_in, k, k) weights of the first conv layer (or ``layer``)."""
    return first_conv(model, layer)[1].weight.detach().cpu().numpy().copy()


def filters_figure(w: np.ndarray, path: str | Path, title: str = "first-layer filters", limit: int = 64) -> Path:
    """Each filter min-max scaled on its own; RGB when C_in == 3, grey otherwise (the channel mean)."""
    pics = []
    for f in w[:limit]:  # (C, k, k)
        pics.append(normalize01(f.transpose(1, 2, 0)) if f.shape[0] == 3 else normalize01(f.mean(0)))
    return image_grid(pics, path, cols=8, title=f"{title} ({len(w)} filters, {w.shape[2]}x{w.shape[3]})", cmap="gray",
                      cell=0.8)
