"""A 'same' convolution whose weight gradient is itself a convolution over the batch: fast on tiny maps.

For a stride-1 convolution with a k x k kernel and padding p = (k - 1) / 2 on an H x W map,

    dW[o, c, i, j] = sum_{b, h, w} dY[b, o, h, w] * Xpad[b, c, h + i, w + j]

which is a convolution of X with dY in which the roles swap: the input channels C become the
batch, the batch B becomes the input channels, and dY is an H x W kernel:

    dW = conv2d(X.transpose(0, 1), dY.transpose(0, 1), padding=p).transpose(0, 1)   # (O, C, k, k)

On a CPU, oneDNN's own weight-gradient kernel is slow when the map is tiny and the batch is the
long reduction (ResNet-9's last stage on 28 x 28 inputs runs at 3 x 3: its weight gradient takes
about 7x the forward pass in bf16); the swapped form runs at forward-pass speed there. On larger
maps the usual kernel wins, so the swap is used only up to ``max_map`` pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError

DEFAULT_MAX_MAP = 16  # pixels (H x W): the swap pays at 3x3 and 4x4, not at 7x7 (benchmarks/small_map_conv.py)


def swapped_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, padding: int) -> torch.Tensor:
    """dW of a stride-1 'same' conv: X (B, C, H, W), dY (B, O, H, W) -> (O, C, k, k), k = 2 * padding + 1."""
    xt = x.transpose(0, 1).contiguous(memory_format=torch.channels_last)  # (C, B, H, W): channels as the batch
    gt = grad_out.transpose(0, 1).contiguous(memory_format=torch.channels_last)  # (O, B, H, W): an H x W kernel
    return F.conv2d(xt, gt, padding=padding).transpose(0, 1)  # (C, O, k, k) -> (O, C, k, k)


class _SmallMapConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, padding: int):
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv2d(x, weight, padding=padding)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        p = ctx.padding
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(grad_out, x, weight, None, [1, 1], [p, p], [1, 1], False, [0, 0],
                                                         1, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            grad_w = swapped_weight_grad(x, grad_out, p).contiguous(memory_format=torch.contiguous_format).to(weight.dtype)
        return grad_x, grad_w, None


class SmallMapConv2d(nn.Conv2d):
    """``nn.Conv2d(cin, cout, k, padding=(k-1)//2, bias=False)`` (same parameters and state dict) whose
    training backward computes the weight gradient as a batch-swapped convolution on maps of at most
    ``max_map`` pixels. Forward values and gradients equal nn.Conv2d's up to rounding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, max_map: int = DEFAULT_MAX_MAP):
        if kernel_size % 2 != 1:
            raise ConfigError(f"SmallMapConv2d needs an odd kernel for 'same' padding, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.max_map = max_map

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if not (torch.is_grad_enabled() and self.weight.requires_grad) or h * w > self.max_map:
            return super().forward(x)
        weight = self.weight
        if torch.is_autocast_enabled(x.device.type):  # a custom Function is not autocast: cast as conv2d would be
            dtype = torch.get_autocast_dtype(x.device.type)
            x, weight = x.to(dtype), weight.to(dtype)
        with torch.autocast(x.device.type, enabled=False):
            return _SmallMapConv.apply(x, weight, self.padding[0])
