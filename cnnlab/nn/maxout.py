"""Maxout (Goodfellow et al. 2013): the max over k linear pieces, max(w1.x + b1, ..., wk.x + bk).

ReLU and leaky ReLU are special cases (k=2 with one piece fixed); a maxout unit never saturates
and never dies, at the cost of k times the parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import ShapeError


def maxout(x: torch.Tensor, pieces: int, dim: int = 1) -> torch.Tensor:
    """Max over consecutive groups of ``pieces`` features along ``dim`` (size C -> C / pieces)."""
    size = x.shape[dim]
    if pieces < 1 or size % pieces:
        raise ShapeError(f"maxout: {size} features along dim {dim} do not split into groups of {pieces}")
    dim = dim % x.dim()
    shape = x.shape[:dim] + (size // pieces, pieces) + x.shape[dim + 1 :]
    return x.reshape(shape).amax(dim=dim + 1)  # (..., C/k, ...)


class Maxout(nn.Module):
    """Fully connected maxout layer: in_features -> out_features, each the max of ``pieces`` linears."""

    def __init__(self, in_features: int, out_features: int, pieces: int = 2, bias: bool = True):
        super().__init__()
        self.out_features, self.pieces = out_features, pieces
        # Piece j of unit i is row i * pieces + j of the linear layer.
        self.linear = nn.Linear(in_features, out_features * pieces, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)  # (B, out * k)
        return maxout(z, self.pieces, dim=-1)  # (B, out)


class MaxoutConv2d(nn.Module):
    """Convolutional maxout: a conv with out_channels * pieces filters, then the max over each group."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, pieces: int = 2, **conv_kwargs):
        super().__init__()
        self.pieces = pieces
        self.conv = nn.Conv2d(in_channels, out_channels * pieces, kernel_size, **conv_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(x)  # (B, C_out * k, H', W')
        return maxout(z, self.pieces, dim=1)  # (B, C_out, H', W')
