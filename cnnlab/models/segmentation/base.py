"""Pieces every segmentation family shares: conv blocks, picking backbone stages, bilinear kernels.

A segmenter maps images (B, C, H, W) to per-pixel class scores (B, K, H, W). Those built on a zoo
backbone keep it as ``self.backbone`` (so --weights, --freeze and the ImageNet MobileNetV2 go to it)
and read its multi-scale maps through the backbone contract: ``forward_intermediates(x, indices)``
and ``feature_info`` (``num_chs``, ``reduction``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    """3x3 'same' convolution, batch norm, ReLU: the unit of every decoder here."""
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def pick_stages(backbone: nn.Module) -> list[tuple[int, int, int]]:
    """(stage index, channels, reduction) of the last stage at each distinct reduction, shallow to deep."""
    last: dict[int, tuple[int, int, int]] = {}
    for i, info in enumerate(backbone.feature_info):
        last[info["reduction"]] = (i, info["num_chs"], info["reduction"])
    return [last[r] for r in sorted(last)]


def bilinear_kernel(channels: int, kernel: int) -> torch.Tensor:
    """(C, C, k, k) weights that make a transposed convolution upsample bilinearly, channel by channel (FCN's init)."""
    factor = (kernel + 1) // 2
    centre = factor - 1 if kernel % 2 == 1 else factor - 0.5
    og = torch.arange(kernel, dtype=torch.float32)
    filt = 1 - (og - centre).abs() / factor  # (k,)
    weight = torch.zeros(channels, channels, kernel, kernel)
    weight[range(channels), range(channels)] = filt[:, None] * filt[None, :]
    return weight


def learned_upsample(channels: int, factor: int) -> nn.Module:
    """A transposed convolution that multiplies the map side by ``factor``, started as bilinear (identity at 1)."""
    if factor == 1:
        return nn.Identity()
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, 2 * factor))
    return up


def match_size(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (B, C, h, w) to ``size`` when it differs (input sides that are not multiples of the stride)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class BackboneSegmenter(nn.Module):
    """Base of segmenters on a zoo backbone: ``stages()`` (for --freeze) are the backbone's."""

    backbone: nn.Module

    def stages(self) -> list[nn.Module]:
        return self.backbone.stages()

    def features(self, x: torch.Tensor, indices: list[int]) -> list[torch.Tensor]:
        return self.backbone.forward_intermediates(x, indices)
