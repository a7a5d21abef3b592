"""A small VGG-style conv net with batch norm: the course's "conv-bn-relu, pool" pattern.

Three stages of two 3x3 conv-bn-relu layers each, 2x2 max pooling between stages, global
average pooling and a linear classifier. Works for any input of at least 4x4 pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallConvNet(Classifier):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, widths: tuple[int, ...] = (32, 64, 128), drop_rate: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for i, w in enumerate(widths):
            if i > 0:
                layers.append(nn.MaxPool2d(2))  # halve H, W
            layers += [conv_bn_relu(cin, w), conv_bn_relu(w, w)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.num_features = cin
        self.drop_rate = drop_rate
        self.head = nn.Linear(cin, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, C, H/4, W/4)

    def stages(self) -> list[nn.Module]:
        """The conv stages in order (for --freeze N): [conv, conv], then [pool, conv, conv] per later stage."""
        n = len(self.features)
        return [self.features[0:2]] + [self.features[i:i + 3] for i in range(2, n, 3)]


@register_model
def convnet_bn(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0, width: int = 32) -> SmallConvNet:
    """Small conv net with batch norm (widths w, 2w, 4w; about 0.29M parameters at w=32)."""
    return SmallConvNet(num_classes, in_chans, widths=(width, 2 * width, 4 * width), drop_rate=drop_rate)
