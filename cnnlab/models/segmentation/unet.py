"""U-Net (Ronneberger et al. 2015): an encoder-decoder whose decoder concatenates the encoder's maps of the
same resolution ("skip connections"), so the fine detail lost by pooling comes back.

- ``UNet``: the paper's shape, from scratch: double 3x3 conv-BN-ReLU blocks, 2x2 max pooling down, 2x2
  stride-2 transposed convolutions ("up-convolutions") up, concatenation, double conv; 1x1 class scores.
- ``BackboneUNet``: the same decoder over any zoo backbone's stages (``forward_intermediates``), e.g. the
  ImageNet MobileNetV2: at each stride (32 -> 16 -> 8 -> 4 -> 2) upsample bilinearly, concatenate the
  backbone's map, conv-BN-ReLU; class scores at the finest stride, bilinearly upsampled to H x W
  (``full_res_skip=True`` adds a last level at H x W whose skip is a small conv on the image itself).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models.segmentation.base import BackboneSegmenter, conv_bn_relu, match_size, pick_stages


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))


class UNet(nn.Module):
    """The paper's U-Net at ``widths`` (the paper: 64, 128, 256, 512, 1024), trained from scratch."""

    def __init__(self, num_classes: int, in_chans: int = 3, widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        self.down = nn.ModuleList(double_conv(in_chans if i == 0 else widths[i - 1], w) for i, w in enumerate(widths))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i], widths[i - 1], 2, stride=2) for i in range(len(widths) - 1, 0, -1))
        self.up_convs = nn.ModuleList(double_conv(2 * widths[i - 1], widths[i - 1]) for i in range(len(widths) - 1, 0, -1))
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))  # (B, w_i, H / 2**i, W / 2**i)
            skips.append(x)
        for up, conv, skip in zip(self.ups, self.up_convs, reversed(skips[:-1])):
            x = match_size(up(x), skip.shape[-2:])  # twice the side, half the channels
            x = conv(torch.cat([x, skip], 1))  # the skip connection: concatenate, then convolve
        return match_size(self.classifier(x), size)  # (B, K, H, W)


def decoder_width(reduction: int) -> int:
    """Channels of the decoder at a stride: narrow where maps are large (16 at full resolution, 32 at half, up to 96).

    Not narrower: every class must still be told apart by the last level's channels."""
    return max(16, min(96, 16 * reduction))


class BackboneUNet(BackboneSegmenter):
    """U-Net decoder over a zoo backbone's stages, down to a full-resolution skip from the image itself."""

    def __init__(self, backbone: nn.Module, num_classes: int, in_chans: int = 3, full_res_skip: bool = False,
                 stem_width: int = 16):
        super().__init__()
        self.backbone = backbone
        stages = pick_stages(backbone)  # shallow to deep
        self.indices = [i for i, _, _ in stages]
        reductions = [r for _, _, r in stages]
        chans = [c for _, c, _ in stages]
        if full_res_skip and reductions[0] > 1:  # the image itself as the finest skip
            self.stem = conv_bn_relu(in_chans, stem_width)
            reductions, chans = [1, *reductions], [stem_width, *chans]
        else:
            self.stem = None
        deep_w = decoder_width(reductions[-1])
        self.reduce = conv_bn_relu(chans[-1], deep_w, kernel=1)  # e.g. MobileNetV2's 1280 channels -> 96
        self.blocks = nn.ModuleList()
        cin = deep_w
        for r, c in zip(reductions[-2::-1], chans[-2::-1]):  # deep to shallow
            self.blocks.append(conv_bn_relu(cin + c, decoder_width(r)))
            cin = decoder_width(r)
        self.classifier = nn.Conv2d(cin, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = self.features(x, self.indices)  # shallow to deep: (B, C_k, H/r_k, W/r_k)
        if self.stem is not None:
            skips = [self.stem(x), *skips]  # (B, 16, H, W)
        y = self.reduce(skips[-1])
        for block, skip in zip(self.blocks, skips[-2::-1]):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], 1))  # concatenate the encoder's map, then convolve
        return match_size(self.classifier(y), x.shape[-2:])  # (B, K, H, W)
