"""Unpooling (upsampling without learned weights), as the course shows for segmentation decoders.

- nearest neighbour: copy each value into its f x f block;
- bed of nails: put each value in the top-left corner of its block, zeros elsewhere;
- max unpooling: put each value back where the max came from during pooling (the "switches"),
  zeros elsewhere; pair ``SwitchMaxPool2d`` in the encoder with ``SwitchMaxUnpool2d(pool)``
  in the decoder so the decoder reuses that pool's switches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ShapeError


def nearest_unpool(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H*f, W*f), each value copied into an f x f block."""
    return x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def bed_of_nails_unpool(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H*f, W*f), each value at the top-left of its block, zeros elsewhere."""
    *lead, h, w = x.shape
    out = x.new_zeros(*lead, h * factor, w * factor)
    out[..., ::factor, ::factor] = x
    return out


def max_unpool(x: torch.Tensor, switches: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
    """Scatter pooled values back to their argmax positions (the switches from max pooling).

    x, switches: (B, C, h, w), switches holding flat indices into each (H, W) map, as returned by
    ``F.max_pool2d(..., return_indices=True)``; output: (B, C, H, W), zeros where no max came from.
    """
    if x.shape != switches.shape:
        raise ShapeError(f"max_unpool: values {tuple(x.shape)} and switches {tuple(switches.shape)} differ in shape")
    h_out, w_out = output_size
    b, c = x.shape[:2]
    out = x.new_zeros(b, c, h_out * w_out)  # (B, C, H*W)
    out.scatter_(2, switches.reshape(b, c, -1), x.reshape(b, c, -1))
    return out.view(b, c, h_out, w_out)


class NearestUnpool2d(nn.Module):
    def __init__(self, factor: int = 2):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nearest_unpool(x, self.factor)


class BedOfNailsUnpool2d(nn.Module):
    def __init__(self, factor: int = 2):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bed_of_nails_unpool(x, self.factor)


class SwitchMaxPool2d(nn.Module):
    """Max pooling that remembers where each max came from (its switches) for a later unpool."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.switches: torch.Tensor | None = None
        self.input_size: tuple[int, int] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, self.switches = F.max_pool2d(x, self.kernel_size, self.stride, self.padding, return_indices=True)
        self.input_size = (x.shape[-2], x.shape[-1])
        return y  # (B, C, h, w)


class SwitchMaxUnpool2d(nn.Module):
    """Max unpooling that reuses the switches of its paired ``SwitchMaxPool2d`` from the same forward pass."""

    def __init__(self, pool: SwitchMaxPool2d):
        super().__init__()
        self._pool = [pool]  # a list, so the pool is not registered twice as a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = self._pool[0]
        if pool.switches is None or pool.switches.shape != x.shape:
            got = None if pool.switches is None else tuple(pool.switches.shape)
            raise ShapeError(
                f"max unpool got {tuple(x.shape)} but its pooling layer's switches are {got}; "
                "run the paired pooling layer on the same batch first"
            )
        return max_unpool(x, pool.switches, pool.input_size)  # (B, C, H, W)
