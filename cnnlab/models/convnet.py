"""A small VGG-style conv net with batch norm: the course's "conv-bn-relu, pool" pattern.

Three stages of two 3x3 conv-bn-relu layers each, 2x2 max pooling between stages, global
average pooling and a linear classifier. Works for any input of at least 4x4 pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.registry import register_model


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallConvNet(nn.Module):
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
        x = self.features(x)  # (B, C, H/4, W/4)
        return x.mean(dim=(2, 3))  # global average pool -> (B, C)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_rate > 0:
            x = nn.functional.dropout(x, self.drop_rate, self.training)
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.num_features, num_classes)

    def stages(self) -> list[nn.Module]:
        """Feature-extractor stages in order (for --freeze N); the head is not a stage."""
        return list(self.features)


@register_model
def convnet_bn(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0, width: int = 32) -> SmallConvNet:
    """Small conv net with batch norm (widths w, 2w, 4w; about 0.29M parameters at w=32)."""
    return SmallConvNet(num_classes, in_chans, widths=(width, 2 * width, 4 * width), drop_rate=drop_rate)
