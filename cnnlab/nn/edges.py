"""Edge detectors as convolution weights (vertical, horizontal, Sobel, Scharr).

The course's vertical edge filter [[1, 0, -1]] * 3 on a 6x6 image whose left half is 10 and
right half 0 gives a 4x4 map with 30 in the two middle columns: a bright stripe where the edge is.

Deep-learning "convolution" (``F.conv2d``) is cross-correlation: the filter is not flipped.
``detect_edges(..., flip=True)`` flips it and so computes the true (mathematical) convolution.
Used as the initial weights of an ``nn.Conv2d`` (``edge_conv2d``) the filters stay learnable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError, ShapeError

_V = [[1.0, 0.0, -1.0]] * 3
_SOBEL_V = [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]
_SCHARR_V = [[3.0, 0.0, -3.0], [10.0, 0.0, -10.0], [3.0, 0.0, -3.0]]

# Vertical filters respond to left-right changes (bright on the left gives positive output);
# horizontal ones are their transposes (bright on top gives positive output).
EDGE_KERNELS: dict[str, list[list[float]]] = {
    "vertical": _V,
    "horizontal": [list(r) for r in zip(*_V)],
    "sobel_vertical": _SOBEL_V,
    "sobel_horizontal": [list(r) for r in zip(*_SOBEL_V)],
    "scharr_vertical": _SCHARR_V,
    "scharr_horizontal": [list(r) for r in zip(*_SCHARR_V)],
}


def edge_kernel(name: str) -> torch.Tensor:
    """The 3x3 filter called ``name`` (one of EDGE_KERNELS) as a float tensor."""
    if name not in EDGE_KERNELS:
        raise ConfigError(f"unknown edge filter {name!r}; choose one of: {', '.join(EDGE_KERNELS)}")
    return torch.tensor(EDGE_KERNELS[name])  # (3, 3)


def detect_edges(image: torch.Tensor, name: str = "vertical", flip: bool = False, padding: int = 0) -> torch.Tensor:
    """Filter a grey image (H, W) or batch (B, 1, H, W) with an edge filter.

    ``flip=False`` is what conv layers compute (cross-correlation); ``flip=True`` rotates the
    filter by 180 degrees first, which is convolution as defined in signal processing.
    """
    squeeze = image.dim() == 2
    x = image[None, None] if squeeze else image  # (B, 1, H, W)
    if x.dim() != 4 or x.shape[1] != 1:
        raise ShapeError(f"detect_edges wants a grey image (H, W) or (B, 1, H, W), got {tuple(image.shape)}")
    k = edge_kernel(name).to(x)
    if flip:
        k = k.flip(0, 1)
    y = F.conv2d(x, k[None, None], padding=padding)  # (B, 1, H', W')
    return y[0, 0] if squeeze else y


def edge_conv2d(names: list[str] | tuple[str, ...] = ("vertical", "horizontal"), in_channels: int = 1, padding: int = 1) -> nn.Conv2d:
    """An ``nn.Conv2d`` with one output channel per named filter, initialised with it, still learnable.

    With several input channels every channel gets the same filter, so the output is the edge
    map of the channel sum; bias starts at zero.
    """
    conv = nn.Conv2d(in_channels, len(names), 3, padding=padding)
    with torch.no_grad():
        for o, name in enumerate(names):
            conv.weight[o] = edge_kernel(name).expand(in_channels, 3, 3)
        conv.bias.zero_()
    return conv
