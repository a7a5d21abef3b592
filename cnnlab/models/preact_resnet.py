"""Pre-activation ResNets (He, Zhang, Ren & Sun 2016, "Identity Mappings in Deep Residual Networks").

Moving batch norm and ReLU *before* each conv (BN-ReLU-conv, BN-ReLU-conv, then add) leaves the
shortcut path a pure identity from input to output, so signal and gradient pass through every
block unchanged; the net ends with one more BN-ReLU before pooling. Where a block changes
dimensions the projection shortcut takes the pre-activated input, as in the paper.

ImageNet layout: ``preact_resnet18/34/50`` (same stages as ResNet-18/34/50). CIFAR layout
(6n+2 basic or 9n+2 bottleneck layers, 16/32/64 base widths): ``preact_resnet20/56/110`` and
the paper's ``preact_resnet164`` (bottleneck, 1.7M parameters). Wide ResNets reuse this class.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model
from cnnlab.models.resnet import make_shortcut


class PreActBlock(nn.Module):
    """BN-ReLU-3x3 conv, BN-ReLU-[dropout]-3x3 conv, plus the shortcut."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, shortcut: str = "B", drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.shortcut = make_shortcut(shortcut, cin, planes, stride, batch_norm=False)
        self.project_preact = isinstance(self.shortcut, nn.Conv2d)  # projections see BN-ReLU(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))  # (B, cin, H, W)
        if self.shortcut is None:
            identity = x
        else:
            identity = self.shortcut(pre if self.project_preact else x)  # (B, planes, H/s, W/s)
        out = self.conv1(pre)
        out = F.relu(self.bn2(out))
        if self.drop_rate > 0:
            out = F.dropout(out, self.drop_rate, self.training)
        return self.conv2(out) + identity


class PreActBottleneck(nn.Module):
    """BN-ReLU-1x1 reduce, BN-ReLU-3x3, BN-ReLU-1x1 expand to 4x planes, plus the shortcut."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, shortcut: str = "B", drop_rate: float = 0.0):
        super().__init__()
        cout = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.drop_rate = drop_rate
        self.shortcut = make_shortcut(shortcut, cin, cout, stride, batch_norm=False)
        self.project_preact = isinstance(self.shortcut, nn.Conv2d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        if self.shortcut is None:
            identity = x
        else:
            identity = self.shortcut(pre if self.project_preact else x)  # (B, 4*planes, H/s, W/s)
        out = self.conv1(pre)  # (B, planes, H, W)
        out = self.conv2(F.relu(self.bn2(out)))  # (B, planes, H/s, W/s)
        if self.drop_rate > 0:
            out = F.dropout(out, self.drop_rate, self.training)
        return self.conv3(F.relu(self.bn3(out))) + identity


class PreActResNet(Classifier):
    """Stem conv, pre-activation stages, final BN-ReLU, global average pool, FC."""
    head_attr = "fc"  # torchvision's key names

    def __init__(
        self,
        block: type[PreActBlock] | type[PreActBottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        widths: Sequence[int] = (64, 128, 256, 512),
        stem: str = "imagenet",
        stem_width: int = 64,
        shortcut: str = "B",
        block_drop_rate: float = 0.0,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError(f"{len(layers)} stage depths but {len(widths)} stage widths")
        if stem == "imagenet":  # conv 7x7/2 -> BN -> ReLU -> max pool 3x3/2
            self.stem = nn.Sequential(
                nn.Conv2d(in_chans, stem_width, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1),
            )
        elif stem == "cifar":  # a lone 3x3 conv; the first block pre-activates it
            self.stem = nn.Sequential(nn.Conv2d(in_chans, stem_width, 3, padding=1, bias=False))
        else:
            raise ValueError(f"unknown stem {stem!r}; choose 'imagenet' or 'cifar'")
        stages: list[nn.Module] = []
        cin = stem_width
        for i, (depth, planes) in enumerate(zip(layers, widths)):
            blocks: list[nn.Module] = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(cin, planes, stride, shortcut=shortcut, drop_rate=block_drop_rate))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(cin)  # the final pre-activation
        self.num_features = cin
        self.final_act = nn.ReLU()  # after the final BN (a module, so the last feature stage ends on it)
        self.drop_rate = drop_rate
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))  # (B, C, H/k, W/k)
        return self.final_act(self.bn(x))  # (B, C, H/k, W/k)

    def stages(self) -> list[nn.Module]:
        """The stem, then one entry per stage; the last stage includes the final BN."""
        stages = [self.stem] + list(self.layers)
        stages[-1] = nn.Sequential(stages[-1], self.bn, self.final_act)
        return stages


def cifar_preact_resnet(depth: int, bottleneck: bool, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> PreActResNet:
    """6n+2 layers with basic blocks, 9n+2 with bottlenecks; stages of 16/32/64 (x4 for bottlenecks)."""
    per_block = 3 if bottleneck else 2
    if (depth - 2) % (3 * per_block) != 0:
        raise ValueError(f"CIFAR pre-activation ResNet depth must be {3 * per_block}n+2, got {depth}")
    n = (depth - 2) // (3 * per_block)
    block = PreActBottleneck if bottleneck else PreActBlock
    return PreActResNet(block, [n, n, n], num_classes, in_chans, widths=(16, 32, 64), stem="cifar", stem_width=16, drop_rate=drop_rate)


@register_model
def preact_resnet18(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, stem: str = "imagenet") -> PreActResNet:
    """Pre-activation ResNet-18 (ImageNet layout; ``stem='cifar'`` for 32x32 inputs)."""
    return PreActResNet(PreActBlock, [2, 2, 2, 2], num_classes, in_chans, stem=stem, drop_rate=drop_rate)


@register_model
def preact_resnet34(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, stem: str = "imagenet") -> PreActResNet:
    """Pre-activation ResNet-34 (ImageNet layout)."""
    return PreActResNet(PreActBlock, [3, 4, 6, 3], num_classes, in_chans, stem=stem, drop_rate=drop_rate)


@register_model
def preact_resnet50(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, stem: str = "imagenet") -> PreActResNet:
    """Pre-activation ResNet-50 (ImageNet layout, bottleneck blocks)."""
    return PreActResNet(PreActBottleneck, [3, 4, 6, 3], num_classes, in_chans, stem=stem, drop_rate=drop_rate)


@register_model
def preact_resnet20(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> PreActResNet:
    """CIFAR pre-activation ResNet-20 (basic blocks, n=3)."""
    return cifar_preact_resnet(20, False, num_classes, in_chans, drop_rate)


@register_model
def preact_resnet56(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> PreActResNet:
    """CIFAR pre-activation ResNet-56 (basic blocks, n=9)."""
    return cifar_preact_resnet(56, False, num_classes, in_chans, drop_rate)


@register_model
def preact_resnet110(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> PreActResNet:
    """CIFAR pre-activation ResNet-110 (basic blocks, n=18; 1.7M parameters)."""
    return cifar_preact_resnet(110, False, num_classes, in_chans, drop_rate)


@register_model
def preact_resnet164(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> PreActResNet:
    """CIFAR pre-activation ResNet-164 (bottleneck blocks, n=18; 1.7M parameters)."""
    return cifar_preact_resnet(164, True, num_classes, in_chans, drop_rate)
