"""Encoder-decoder without skips: downsample to a small map, then upsample back, with a chosen upsampling.

Encoder: ``levels`` blocks of conv-BN-ReLU then 2x2 max pooling (H -> H / 2**levels); decoder: at each
level an upsampling by 2 then conv-BN-ReLU, and 1x1 class scores at the input's resolution. The
upsampling is the course's list (``cnnlab.nn.unpool``):

- ``nearest``       copy each value into its 2x2 block
- ``bed_of_nails``  the value in the top-left corner, zeros elsewhere
- ``max_unpool``    the value where the max came from, zeros elsewhere: the encoder's pools keep their
                    switches and each decoder level reuses its mirror pool's (SegNet, Badrinarayanan et al.)
- ``transposed``    a learned 4x4 stride-2 transposed convolution
- ``bilinear``      bilinear interpolation
With no skip connection every detail must pass through the H/16 bottleneck: compare with U-Net.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models.segmentation.base import conv_bn_relu
from cnnlab.nn.unpool import BedOfNailsUnpool2d, NearestUnpool2d, SwitchMaxPool2d, SwitchMaxUnpool2d

UPSAMPLES = ("nearest", "bed_of_nails", "max_unpool", "transposed", "bilinear")


class Bilinear2x(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class EncoderDecoder(nn.Module):
    def __init__(self, num_classes: int, in_chans: int = 3, upsample: str = "max_unpool",
                 widths: tuple[int, ...] = (16, 32, 64, 128), convs: int = 2):
        super().__init__()
        if upsample not in UPSAMPLES:
            raise ValueError(f"upsample {upsample!r}: choose one of {', '.join(UPSAMPLES)}")
        self.upsample = upsample
        self.encoder, self.pools = nn.ModuleList(), nn.ModuleList()
        cin = in_chans
        for w in widths:
            self.encoder.append(nn.Sequential(*[conv_bn_relu(cin if i == 0 else w, w) for i in range(convs)]))
            self.pools.append(SwitchMaxPool2d(2))
            cin = w
        self.ups, self.decoder = nn.ModuleList(), nn.ModuleList()
        outs = list(widths[-2::-1]) + [widths[0]]  # e.g. 128 -> 64 -> 32 -> 16 -> 16
        for level, w_out in zip(range(len(widths) - 1, -1, -1), outs):
            c = widths[level]
            self.ups.append(self._upsampler(upsample, c, self.pools[level]))
            self.decoder.append(nn.Sequential(*[conv_bn_relu(c if i == 0 else w_out, w_out) for i in range(convs)]))
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    @staticmethod
    def _upsampler(kind: str, channels: int, pool: SwitchMaxPool2d) -> nn.Module:
        if kind == "nearest":
            return NearestUnpool2d(2)
        if kind == "bed_of_nails":
            return BedOfNailsUnpool2d(2)
        if kind == "max_unpool":
            return SwitchMaxUnpool2d(pool)
        if kind == "transposed":
            return nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1)
        return Bilinear2x()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        n = len(self.encoder)
        if h % 2 ** n or w % 2 ** n:
            raise ValueError(f"encdec needs image sides divisible by {2 ** n}, got {h}x{w}; pick another --img-size")
        for block, pool in zip(self.encoder, self.pools):
            x = pool(block(x))  # (B, C_l, H / 2**(l+1), W / 2**(l+1))
        for up, block in zip(self.ups, self.decoder):
            x = block(up(x.contiguous()))  # twice the side
        return self.classifier(x)  # (B, K, H, W)
