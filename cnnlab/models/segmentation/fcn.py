"""Fully convolutional segmentation: at full resolution (too expensive), and FCN-32s/16s/8s (Long et al. 2015).

Full resolution: a stack of 3x3 convolutions that never downsamples, so every layer pays for all
H x W pixels and the receptive field grows by only 2 pixels per layer.

FCN: a classification backbone's maps at strides 8, 16 and 32, each scored into K classes by a
1x1 convolution; the coarsest scores are upsampled by learned transposed convolutions (started as
bilinear interpolation) and summed with the finer ones ("skip fusion"):

    FCN-32s: up32(score32)
    FCN-16s: up16(up2(score32) + score16)
    FCN-8s:  up8(up2(up2(score32) + score16) + score8)

On a backbone with other strides (resnet20: 1, 2, 4) the three deepest reductions are used.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.segmentation.base import BackboneSegmenter, conv_bn_relu, learned_upsample, match_size, pick_stages


class FullResolutionFCN(nn.Module):
    """``depth`` 3x3 conv-BN-ReLU layers of ``width`` channels at the input's resolution, then 1x1 class scores."""

    def __init__(self, num_classes: int, in_chans: int = 3, width: int = 32, depth: int = 10):
        super().__init__()
        layers = [conv_bn_relu(in_chans if i == 0 else width, width) for i in range(depth)]
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))  # (B, K, H, W): every layer at H x W


class FCN(BackboneSegmenter):
    """FCN-``variant`` (32s, 16s or 8s) on any zoo backbone."""

    def __init__(self, backbone: nn.Module, num_classes: int, variant: str = "8s"):
        super().__init__()
        if variant not in ("32s", "16s", "8s"):
            raise ValueError(f"FCN variant {variant!r}: choose 32s, 16s or 8s")
        self.backbone, self.variant = backbone, variant
        stages = pick_stages(backbone)[-{"32s": 1, "16s": 2, "8s": 3}[variant]:]  # fine to coarse
        self.indices = [i for i, _, _ in stages]
        self.reductions = [r for _, _, r in stages]
        self.scores = nn.ModuleList(nn.Conv2d(c, num_classes, 1) for _, c, _ in stages)
        # up[k] takes the fused scores at reductions[k + 1] to reductions[k]; final takes reductions[0] to the input
        self.up = nn.ModuleList(learned_upsample(num_classes, self.reductions[k + 1] // self.reductions[k])
                                for k in range(len(stages) - 1))
        self.final = learned_upsample(num_classes, self.reductions[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.features(x, self.indices)  # fine to coarse: (B, C_k, H/r_k, W/r_k)
        y = self.scores[-1](feats[-1])  # (B, K, H/32, W/32)
        for k in range(len(feats) - 2, -1, -1):
            skip = self.scores[k](feats[k])  # (B, K, H/r_k, W/r_k)
            y = match_size(self.up[k](y), skip.shape[-2:]) + skip  # skip fusion
        return match_size(self.final(y), x.shape[-2:])  # (B, K, H, W)
