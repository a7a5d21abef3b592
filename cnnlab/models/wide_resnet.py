"""Wide residual networks (Zagoruyko & Komodakis 2016): shallower, k times wider ResNets.

CIFAR WRN-d-k: a 3x3 conv with 16 filters, three stages of N = (d-4)/6 pre-activation basic
blocks with 16k, 32k, 64k filters, BN-ReLU, global average pooling, FC. Dropout between the two
convs of each block (``drop_rate``; the paper uses 0.3) regularizes instead of more depth.
WRN-28-10 has 36.5M parameters and beats the thin 1001-layer pre-activation ResNet on CIFAR.

ImageNet ``wide_resnet50_2`` / ``wide_resnet101_2`` are ResNet-50/101 whose bottleneck 3x3
convs are twice as wide (68,883,240 / 126,886,696 parameters), named as in torchvision.
"""

from __future__ import annotations

from cnnlab.models.preact_resnet import PreActBlock, PreActResNet
from cnnlab.models.registry import register_model
from cnnlab.models.resnet import Bottleneck, ResNet


def cifar_wide_resnet(depth: int, widen: int, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> PreActResNet:
    """WRN-depth-widen for 32x32 inputs; ``drop_rate`` is the in-block dropout."""
    if (depth - 4) % 6 != 0:
        raise ValueError(f"wide ResNet depth must be 6N+4 (16, 22, 28, 40, ...), got {depth}")
    n = (depth - 4) // 6
    return PreActResNet(PreActBlock, [n, n, n], num_classes, in_chans, widths=(16 * widen, 32 * widen, 64 * widen),
                        stem="cifar", stem_width=16, shortcut="B", block_drop_rate=drop_rate)


@register_model
def wrn16_4(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> PreActResNet:
    """WRN-16-4 (CIFAR, 2.7M parameters)."""
    return cifar_wide_resnet(16, 4, num_classes, in_chans, drop_rate)


@register_model
def wrn16_8(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> PreActResNet:
    """WRN-16-8 (CIFAR, 11.0M parameters)."""
    return cifar_wide_resnet(16, 8, num_classes, in_chans, drop_rate)


@register_model
def wrn28_10(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> PreActResNet:
    """WRN-28-10 (CIFAR, 36.5M parameters)."""
    return cifar_wide_resnet(28, 10, num_classes, in_chans, drop_rate)


@register_model
def wrn40_4(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> PreActResNet:
    """WRN-40-4 (CIFAR, 8.9M parameters)."""
    return cifar_wide_resnet(40, 4, num_classes, in_chans, drop_rate)


@register_model
def wide_resnet50_2(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0) -> ResNet:
    """Wide ResNet-50-2: ResNet-50 with 2x wider bottlenecks (68,883,240 parameters)."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, base_width=128, drop_rate=drop_rate)


@register_model
def wide_resnet101_2(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0) -> ResNet:
    """Wide ResNet-101-2: ResNet-101 with 2x wider bottlenecks (126,886,696 parameters)."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, in_chans, base_width=128, drop_rate=drop_rate)
