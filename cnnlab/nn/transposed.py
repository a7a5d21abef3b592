"""Transposed convolution written out: each input value scales the filter, copies land stride apart
in the output, and where copies overlap they are summed.

The course's 1-D example: input [a, b], filter [x, y, z], stride 2 ->
output [a*x, a*y, a*z + b*x, b*y, b*z]. These functions match ``F.conv_transpose1d/2d``;
they exist to show the arithmetic, use torch's for speed.
"""

from __future__ import annotations

import torch


def transposed_conv1d(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """x (B, C_in, L), weight (C_in, C_out, K) -> (B, C_out, (L-1)*s + K - 2p)."""
    b, c_in, length = x.shape
    _, c_out, k = weight.shape
    full = x.new_zeros(b, c_out, (length - 1) * stride + k)
    for i in range(length):  # input position i paints the filter at output i*s ... i*s+K-1
        full[:, :, i * stride : i * stride + k] += torch.einsum("bc,cok->bok", x[:, :, i], weight)
    return full[:, :, padding : full.shape[-1] - padding]


def transposed_conv2d(
    x: torch.Tensor, weight: torch.Tensor, stride: int = 1, padding: int = 0, output_padding: int = 0
) -> torch.Tensor:
    """x (B, C_in, H, W), weight (C_in, C_out, K, K) -> (B, C_out, (H-1)*s + K - 2p + op, ...).

    For each filter tap (u, v) the whole input, mixed across channels by that tap, is added to
    the output grid at offset (u, v) with spacing ``stride``: overlapping copies are summed.
    """
    b, _, h, w = x.shape
    _, c_out, kh, kw = weight.shape
    out_h = (h - 1) * stride + kh + output_padding
    out_w = (w - 1) * stride + kw + output_padding
    full = x.new_zeros(b, c_out, out_h, out_w)
    for u in range(kh):
        for v in range(kw):
            tap = torch.einsum("bchw,co->bohw", x, weight[:, :, u, v])  # (B, C_out, H, W)
            full[:, :, u : u + (h - 1) * stride + 1 : stride, v : v + (w - 1) * stride + 1 : stride] += tap
    return full[:, :, padding : out_h - padding, padding : out_w - padding]
