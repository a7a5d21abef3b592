"""Network in Network (Lin, Chen & Yan 2013), the paper's CIFAR-10 model.

Each "mlpconv" block is one spatial convolution followed by 1x1 convolutions: a small MLP slid
over every position. Three blocks (192-160-96, 192-192-192, 192-192-classes), 3x3/2 max pooling
and dropout after the first two, and no fully connected layers: the last 1x1 conv makes one
confidence map per class and global average pooling turns each map into a logit.

Global average pooling and a 1x1 conv are both linear, so they commute: the head here is a
``Linear`` on the pooled 192 features, which equals "1x1 conv to class maps, then average".
``class_maps(x)`` gives the maps themselves (B, classes, 8, 8). Pooling uses ceil mode as in
the original Caffe model: 32x32 -> 16x16 -> 8x8; it works from 8x8 inputs up.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model


def mlpconv(cin: int, widths: tuple[int, ...], kernel_size: int) -> nn.Sequential:
    """One kxk conv then 1x1 convs, each followed by ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(cin, widths[0], kernel_size, padding=kernel_size // 2), nn.ReLU(inplace=True)]
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Conv2d(a, b, 1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class NIN(Classifier):
    """Three mlpconv blocks and a global-average-pooling head; ``num_features`` is 192."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.5):
        super().__init__()
        self.block1 = mlpconv(in_chans, (192, 160, 96), 5)  # (B, 96, H, W)
        self.pool1 = nn.Sequential(nn.MaxPool2d(3, 2, ceil_mode=True), nn.Dropout(drop_rate))  # (B, 96, H/2, W/2)
        self.block2 = mlpconv(96, (192, 192, 192), 5)
        self.pool2 = nn.Sequential(nn.MaxPool2d(3, 2, ceil_mode=True), nn.Dropout(drop_rate))  # (B, 192, H/4, W/4)
        self.block3 = mlpconv(192, (192, 192), 3)  # the last 1x1 conv (192 -> classes) is the head
        self.num_features = 192
        self.head = nn.Linear(192, num_classes)

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.block1(x))
        x = self.pool2(self.block2(x))
        return self.block3(x)  # (B, 192, H/4, W/4)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_maps(x)  # (B, 192, H/4, W/4)

    def class_maps(self, x: torch.Tensor) -> torch.Tensor:
        """One confidence map per class, (B, num_classes, H/4, W/4); their means are the logits."""
        w = self.head.weight[:, :, None, None]  # (classes, 192, 1, 1)
        return F.conv2d(self.feature_maps(x), w, self.head.bias)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.num_features, num_classes)

    def stages(self) -> list[nn.Module]:
        return [nn.Sequential(self.block1, self.pool1), nn.Sequential(self.block2, self.pool2), self.block3]


@register_model
def nin(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.5) -> NIN:
    """Network in Network for CIFAR-10 (966,986 parameters with 10 classes)."""
    return NIN(num_classes, in_chans, drop_rate)
