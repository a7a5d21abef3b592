"""ResNet (He, Zhang, Ren & Sun 2015): residual blocks y = F(x) + shortcut(x), for ImageNet.

Two blocks: *basic* (3x3 -> 3x3, ResNet-18/34) and *bottleneck* (1x1 reduce -> 3x3 -> 1x1
expand x4, ResNet-50/101/152). When a block changes the number of channels or the resolution
the shortcut cannot be the identity; the paper's options (as in the CS231n notes):
  "A": identity on a strided subsample, extra channels padded with zeros (no parameters);
  "B": a learned 1x1 projection W_s (conv + batch norm) only where dimensions change (default);
  "C": projections on every block.
``residual=False`` drops the shortcuts altogether: the "plain" nets of the degradation experiment.

The same ``ResNet`` class also builds ResNeXt (``groups``, ``base_width``), wide ResNets
(``base_width=128``) and the CIFAR nets (``stem="cifar"``, three stages of 16/32/64 filters);
those families live in their own files. Module names follow torchvision, so its weights load.
The bottleneck strides in its 3x3 conv like torchvision ("v1.5"); ``stride_in_1x1=True`` puts the
stride on the first 1x1 conv as in the paper (same parameters, different features).
Parameters: 11,689,512 / 21,797,672 / 25,557,032 / 44,549,160 / 60,192,808 for 18/34/50/101/152.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model

SHORTCUTS = ("A", "B", "C")


class ZeroPadShortcut(nn.Module):
    """Option A: subsample by ``stride`` and append zero channels; no parameters."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        if cout < cin:
            raise ValueError(f"zero-padding shortcut cannot shrink {cin} channels to {cout}; use shortcut='B'")
        self.stride = stride
        self.extra = cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]  # (B, Cin, H/s, W/s), like a strided 1x1 conv
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))  # (B, Cout, H/s, W/s)


def make_shortcut(kind: str, cin: int, cout: int, stride: int, batch_norm: bool = True) -> nn.Module | None:
    """The shortcut of one block, or None for the plain identity."""
    if kind not in SHORTCUTS:
        raise ValueError(f"unknown shortcut {kind!r}; choose one of {', '.join(SHORTCUTS)}")
    changes = stride != 1 or cin != cout
    if kind == "A":
        return ZeroPadShortcut(cin, cout, stride) if changes else None
    if kind == "B" and not changes:
        return None
    proj = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)  # W_s
    return nn.Sequential(proj, nn.BatchNorm2d(cout)) if batch_norm else proj


class BasicBlock(nn.Module):
    """3x3 conv-bn-relu, 3x3 conv-bn, add the shortcut, relu."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, residual: bool = True, stride_in_1x1: bool = False):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("the basic block has no groups or width option; use a bottleneck net (resnet50 and up)")
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (B, planes, H/s, W/s)
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand to 4x planes; add the shortcut, relu."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, residual: bool = True, stride_in_1x1: bool = False):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(cin, width, 1, stride=s1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=s3, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (B, width, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (B, width, H/s, W/s)
        out = self.bn3(self.conv3(out))  # (B, 4*planes, H/s, W/s)
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class ResNet(Classifier):
    """Stem, one stage per entry of ``layers`` (the first at stride 1, the others at stride 2), global pool, FC."""
    head_attr = "fc"  # torchvision's key names

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        widths: Sequence[int] = (64, 128, 256, 512),
        stem: str = "imagenet",
        stem_width: int = 64,
        shortcut: str = "B",
        residual: bool = True,
        groups: int = 1,
        base_width: int = 64,
        stride_in_1x1: bool = False,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError(f"{len(layers)} stage depths but {len(widths)} stage widths")
        if stem == "imagenet":  # 7x7/2 conv and 3x3/2 max pool: 224 -> 56
            self.conv1 = nn.Conv2d(in_chans, stem_width, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        elif stem == "cifar":  # one 3x3 conv at full resolution: 32 -> 32
            self.conv1 = nn.Conv2d(in_chans, stem_width, 3, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            raise ValueError(f"unknown stem {stem!r}; choose 'imagenet' or 'cifar'")
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)

        self.stage_names: list[str] = []
        cin = stem_width
        for i, (depth, planes) in enumerate(zip(layers, widths)):
            blocks: list[nn.Module] = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                cout = planes * block.expansion
                down = make_shortcut(shortcut, cin, cout, stride) if residual else None
                blocks.append(block(cin, planes, stride, down, groups=groups, base_width=base_width,
                                    residual=residual, stride_in_1x1=stride_in_1x1))
                cin = cout
            name = f"layer{i + 1}"
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = cin
        self.drop_rate = drop_rate
        self.fc = nn.Linear(cin, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """He (fan-out) initialization for convs, as in the paper; batch norm starts as identity."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, stem_width, H/4, W/4) for the ImageNet stem
        for name in self.stage_names:
            x = getattr(self, name)(x)  # (B, C_i, ., .)
        return x  # (B, num_features, H/32, W/32) for the ImageNet layout

    def stages(self) -> list[nn.Module]:
        """The stem (conv1, bn1, relu, max pool), then layer1, layer2, ..."""
        stem = nn.Sequential(self.conv1, self.bn1, self.relu, self.maxpool)
        return [stem] + [getattr(self, n) for n in self.stage_names]


def _resnet(block: type[BasicBlock] | type[Bottleneck], layers: Sequence[int], num_classes: int, in_chans: int,
            drop_rate: float, shortcut: str, stem: str) -> ResNet:
    return ResNet(block, layers, num_classes, in_chans, shortcut=shortcut, stem=stem, drop_rate=drop_rate)


@register_model
def resnet18(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, shortcut: str = "B", stem: str = "imagenet") -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2] (11,689,512 parameters)."""
    return _resnet(BasicBlock, [2, 2, 2, 2], num_classes, in_chans, drop_rate, shortcut, stem)


@register_model
def resnet34(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, shortcut: str = "B", stem: str = "imagenet") -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3] (21,797,672 parameters)."""
    return _resnet(BasicBlock, [3, 4, 6, 3], num_classes, in_chans, drop_rate, shortcut, stem)


@register_model
def resnet50(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, shortcut: str = "B", stem: str = "imagenet") -> ResNet:
    """ResNet-50: bottleneck blocks [3, 4, 6, 3] (25,557,032 parameters)."""
    return _resnet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, drop_rate, shortcut, stem)


@register_model
def resnet101(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, shortcut: str = "B", stem: str = "imagenet") -> ResNet:
    """ResNet-101: bottleneck blocks [3, 4, 23, 3] (44,549,160 parameters)."""
    return _resnet(Bottleneck, [3, 4, 23, 3], num_classes, in_chans, drop_rate, shortcut, stem)


@register_model
def resnet152(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, shortcut: str = "B", stem: str = "imagenet") -> ResNet:
    """ResNet-152: bottleneck blocks [3, 8, 36, 3] (60,192,808 parameters)."""
    return _resnet(Bottleneck, [3, 8, 36, 3], num_classes, in_chans, drop_rate, shortcut, stem)
