"""AlexNet (Krizhevsky, Sutskever & Hinton 2012), as described in the CS231n notes, and torchvision's variant.

CS231n's AlexNet on 227x227x3 (output volumes):
    CONV1 96 11x11/4      -> 55x55x96     MAX POOL 3x3/2 -> 27x27x96   NORM1
    CONV2 256 5x5 pad 2   -> 27x27x256    MAX POOL 3x3/2 -> 13x13x256  NORM2
    CONV3 384 3x3 pad 1   -> 13x13x384
    CONV4 384 3x3 pad 1   -> 13x13x384
    CONV5 256 3x3 pad 1   -> 13x13x256    MAX POOL 3x3/2 -> 6x6x256
    FC6 4096 -> FC7 4096 -> FC8 1000      (62,378,344 parameters)
``groups=2`` reproduces the paper's split over two GPUs: CONV2, CONV4 and CONV5 only see the
half of the previous layer on their own GPU (60,965,224 parameters); CONV3 and the FC layers
are connected across both.

Local response normalization follows the paper, b = a / (k + alpha * sum(a^2))^beta with
k=2, n=5, alpha=1e-4, beta=0.75; torch's LocalResponseNorm divides alpha by n, hence alpha*n.

``alexnet_tv`` is torchvision's one-GPU variant (64/192/384/256/256 filters, no LRN, padding 2
in CONV1, 61,100,840 parameters) with the same module names, so its state dicts load as-is.
An adaptive average pool to 6x6 before FC6 (identity at 227x227 / 224x224) lets both accept
smaller inputs, as torchvision does: at least 67x67 for ``alexnet``, 63x63 for ``alexnet_tv``.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import ShapeError
from cnnlab.models.base import FCStackClassifier
from cnnlab.models.registry import register_model

LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0


def _min_input_size(conv1_padding: int) -> int:
    """Smallest input side for which CONV1 (11x11/4) and the three 3x3/2 max pools leave a 1x1 map."""
    size = 11
    while True:
        s = (size + 2 * conv1_padding - 11) // 4 + 1
        for _ in range(3):
            s = (s - 3) // 2 + 1 if s >= 3 else 0
        if s >= 1:
            return size
        size += 1


class AlexNet(FCStackClassifier):
    """Five conv layers and three fully connected ones; ``num_features`` is FC7's 4096."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        widths: tuple[int, int, int, int, int] = (96, 256, 384, 384, 256),
        conv1_padding: int = 0,
        lrn: bool = True,
        groups: int = 1,
        fc_width: int = 4096,
        drop_rate: float = 0.5,
    ):
        super().__init__()
        c1, c2, c3, c4, c5 = widths
        block1: list[nn.Module] = [nn.Conv2d(in_chans, c1, 11, stride=4, padding=conv1_padding), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2)]
        block2: list[nn.Module] = [nn.Conv2d(c1, c2, 5, padding=2, groups=groups), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2)]
        if lrn:
            block1.append(nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_ALPHA * LRN_SIZE, beta=LRN_BETA, k=LRN_K))
            block2.append(nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_ALPHA * LRN_SIZE, beta=LRN_BETA, k=LRN_K))
        block3 = [nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True)]  # connected across GPUs
        block4 = [nn.Conv2d(c3, c4, 3, padding=1, groups=groups), nn.ReLU(inplace=True)]
        block5 = [nn.Conv2d(c4, c5, 3, padding=1, groups=groups), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2)]
        self._block_ends = []
        layers: list[nn.Module] = []
        for block in (block1, block2, block3, block4, block5):
            layers += block
            self._block_ends.append(len(layers))
        self.features = nn.Sequential(*layers)  # (B, c5, 6, 6) at 227x227
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(drop_rate),
            nn.Linear(c5 * 6 * 6, fc_width),  # FC6
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(fc_width, fc_width),  # FC7
            nn.ReLU(inplace=True),
            nn.Linear(fc_width, num_classes),  # FC8, the head
        )
        self.num_features = fc_width
        self.min_input_size = _min_input_size(conv1_padding)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < self.min_input_size:
            raise ShapeError(f"AlexNet needs inputs of at least {self.min_input_size}x{self.min_input_size} pixels, "
                             f"got {tuple(x.shape[-2:])}; resize the images (e.g. --img-size 227)")
        return self.features(x)  # (B, C5, h, w): 6x6 at 227x227

    def stages(self) -> list[nn.Module]:
        """CONV1..CONV5 blocks, then FC6 and FC7 (each with its dropout and ReLU)."""
        starts = [0] + self._block_ends[:-1]
        convs = [self.features[a:b] for a, b in zip(starts, self._block_ends)]
        return convs + [self.classifier[0:3], self.classifier[3:6]]


@register_model
def alexnet(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5, groups: int = 1, lrn: bool = True) -> AlexNet:
    """CS231n's AlexNet (227x227 input, LRN); ``groups=2`` for the paper's two-GPU split."""
    return AlexNet(num_classes, in_chans, groups=groups, drop_rate=drop_rate, lrn=lrn)


@register_model
def alexnet_tv(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> AlexNet:
    """torchvision's AlexNet variant (224x224 input, no LRN); loads torchvision weights."""
    return AlexNet(num_classes, in_chans, widths=(64, 192, 384, 256, 256), conv1_padding=2, lrn=False, drop_rate=drop_rate)
