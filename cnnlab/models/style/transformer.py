"""The feed-forward image transformation network of fast style transfer (Johnson, Alahi & Fei-Fei, ECCV 2016).

    9x9 conv (32) -> 3x3 stride-2 conv (64) -> 3x3 stride-2 conv (128)      down-sample by 4
    -> 5 residual blocks (two 3x3 convs of 128 each)                         at 1/4 resolution
    -> 2 x (nearest up-sample 2x + 3x3 conv) (64, 32) -> 9x9 conv (3)        back to full size
Every conv but the last is followed by instance normalization (Ulyanov et al. 2016, which Johnson's released
code adopted) and ReLU; reflection padding avoids border artefacts; up-sampling by resize + conv instead of
transposed convs avoids checkerboards (Odena et al. 2016). The output is sigmoid'ed to RGB in [0, 1].
Any input size works; the output has the input's size (odd sizes are cropped back after up-sampling).
``width`` scales every channel count (0.5 = a 4x cheaper net, 1.0 = the paper's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvNormReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True):
        layers: list[nn.Module] = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride),
                                   nn.InstanceNorm2d(cout, affine=True)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(ConvNormReLU(channels, channels, 3), ConvNormReLU(channels, channels, 3, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Upsample(nn.Module):
    """Nearest 2x up-sampling to a given size, then conv + norm + ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = ConvNormReLU(cin, cout, 3)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


class TransformerNet(nn.Module):
    """RGB (B, 3, H, W) in [0, 1] -> stylized RGB (B, 3, H, W) in [0, 1]."""

    def __init__(self, width: float = 1.0, residual_blocks: int = 5):
        super().__init__()
        c1, c2, c3 = (max(4, round(c * width)) for c in (32, 64, 128))
        self.width, self.residual_blocks = width, residual_blocks
        self.down1 = ConvNormReLU(3, c1, 9)
        self.down2 = ConvNormReLU(c1, c2, 3, stride=2)
        self.down3 = ConvNormReLU(c2, c3, 3, stride=2)
        self.res = nn.Sequential(*[ResidualBlock(c3) for _ in range(residual_blocks)])
        self.up1 = Upsample(c3, c2)
        self.up2 = Upsample(c2, c1)
        self.out = nn.Sequential(nn.ReflectionPad2d(4), nn.Conv2d(c1, 3, 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.down1(x)  # (B, c1, H, W)
        h2 = self.down2(h1)  # (B, c2, H/2, W/2)
        h = self.res(self.down3(h2))  # (B, c3, H/4, W/4)
        h = self.up1(h, h2.shape[-2:])  # (B, c2, H/2, W/2)
        h = self.up2(h, h1.shape[-2:])  # (B, c1, H, W)
        return torch.sigmoid(self.out(h))  # (B, 3, H, W)
