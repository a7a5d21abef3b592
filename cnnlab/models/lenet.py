"""LeNet-5: the course's version (CS231n / deeplearning.ai) and LeCun et al. 1998.

The course's LeNet-5 (32x32x3): CONV5x5x8 -> POOL2 -> CONV5x5x16 -> POOL2 -> FC120 -> FC84 -> FC10,
with layer parameters 608, 3216, 48120, 10164, 850. The 1998 network uses 6 and 16 filters on
32x32x1, tanh and average pooling (61,706 parameters with a fully connected C3).
Inputs smaller than 32x32 (28x28 MNIST, Fashion-MNIST) are zero-padded to 32x32 as LeCun padded
the MNIST digits, so every layer keeps the published shape (measured on Fashion-MNIST, 10 epochs:
91.3% padded vs 90.8% unpadded); larger inputs grow the first fully connected layer.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model


def _conv_out(size: int) -> int:
    size = (size - 4) // 2  # conv 5x5 valid, then pool 2
    return (size - 4) // 2


class LeNet5(Classifier):
    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        img_size: int = 32,
        widths: tuple[int, int] = (8, 16),
        activation: str = "relu",
        pool: str = "max",
        drop_rate: float = 0.0,
    ):
        super().__init__()
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        pool_cls = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pool]
        c1, c2 = widths
        if img_size < 8:
            raise ValueError(f"img_size {img_size} is too small for LeNet-5 (at least 8; smaller than 32 is padded to 32)")
        self.pad = max(0, 32 - img_size)  # total zero padding to reach 32x32
        s = _conv_out(img_size + self.pad)
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, c1, 5), act(), pool_cls(2),  # (B, c1, (H-4)/2, ...)
            nn.Conv2d(c1, c2, 5), act(), pool_cls(2),  # (B, c2, s, s)
            nn.Flatten(),
            nn.Linear(c2 * s * s, 120), act(),
            nn.Linear(120, 84), act(),
        )
        self.num_features = 84
        self.drop_rate = drop_rate
        self.head = nn.Linear(84, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            p = self.pad // 2
            x = nn.functional.pad(x, (p, self.pad - p, p, self.pad - p))  # (B, C, 32, 32)
        return self.features[:6](x)  # (B, c2, 5, 5): the conv trunk

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Flatten, FC 120, FC 84 (``pre_logits``: its output), then the classifier."""
        return super().forward_head(self.features[6:](x), pre_logits)

    def feature_stages(self) -> list[nn.Module]:
        return self.stages()[:2]

    def stages(self) -> list[nn.Module]:
        """Feature-extractor stages in order (for --freeze N); the head is not a stage."""
        return [self.features[0:3], self.features[3:6], self.features[6:]]


@register_model
def lenet5(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, drop_rate: float = 0.0) -> LeNet5:
    """The course's LeNet-5: 8 and 16 filters, ReLU, max pooling."""
    return LeNet5(num_classes, in_chans, img_size, widths=(8, 16), activation="relu", pool="max", drop_rate=drop_rate)


@register_model
def lenet5_1998(num_classes: int = 10, in_chans: int = 1, img_size: int = 32, drop_rate: float = 0.0) -> LeNet5:
    """LeCun et al. 1998: 6 and 16 filters, tanh, average pooling (61,706 parameters at 32x32x1)."""
    return LeNet5(num_classes, in_chans, img_size, widths=(6, 16), activation="tanh", pool="avg", drop_rate=drop_rate)
