"""The CIFAR-10 ResNets of He et al. 2015 (section 4.2) and their plain twins.

Depth 6n+2 on 32x32 inputs: a 3x3 conv with 16 filters, three stages of n basic blocks with
16, 32, 64 filters on 32x32, 16x16, 8x8 maps (stride-2 first conv where the size halves),
global average pooling and a 10-way FC. Shortcuts are option A (identity, zero-padded where the
width doubles), so the residual nets have exactly as many parameters as the plain ones:
0.27M / 0.46M / 0.66M / 0.85M / 1.7M for depths 20 / 32 / 44 / 56 / 110.

``plainN`` removes every shortcut: the paper's degradation experiment (Fig. 6) shows the deeper
plain nets train *worse*, while the deeper residual nets train better.
"""

from __future__ import annotations

from cnnlab.models.registry import register_model
from cnnlab.models.resnet import BasicBlock, ResNet


def cifar_resnet(depth: int, num_classes: int = 10, in_chans: int = 3, residual: bool = True,
                 shortcut: str = "A", drop_rate: float = 0.0) -> ResNet:
    """A 6n+2-layer CIFAR ResNet (or plain net with ``residual=False``)."""
    if (depth - 2) % 6 != 0:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110, ...), got {depth}")
    n = (depth - 2) // 6
    return ResNet(BasicBlock, [n, n, n], num_classes, in_chans, widths=(16, 32, 64), stem="cifar", stem_width=16,
                  shortcut=shortcut, residual=residual, drop_rate=drop_rate)


@register_model
def resnet20(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0, shortcut: str = "A") -> ResNet:
    """CIFAR ResNet-20 (n=3, 0.27M parameters)."""
    return cifar_resnet(20, num_classes, in_chans, shortcut=shortcut, drop_rate=drop_rate)


@register_model
def resnet32(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0, shortcut: str = "A") -> ResNet:
    """CIFAR ResNet-32 (n=5, 0.46M parameters)."""
    return cifar_resnet(32, num_classes, in_chans, shortcut=shortcut, drop_rate=drop_rate)


@register_model
def resnet44(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0, shortcut: str = "A") -> ResNet:
    """CIFAR ResNet-44 (n=7, 0.66M parameters)."""
    return cifar_resnet(44, num_classes, in_chans, shortcut=shortcut, drop_rate=drop_rate)


@register_model
def resnet56(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0, shortcut: str = "A") -> ResNet:
    """CIFAR ResNet-56 (n=9, 0.85M parameters)."""
    return cifar_resnet(56, num_classes, in_chans, shortcut=shortcut, drop_rate=drop_rate)


@register_model
def resnet110(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0, shortcut: str = "A") -> ResNet:
    """CIFAR ResNet-110 (n=18, 1.7M parameters)."""
    return cifar_resnet(110, num_classes, in_chans, shortcut=shortcut, drop_rate=drop_rate)


@register_model
def plain20(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> ResNet:
    """CIFAR plain net with 20 layers: ResNet-20 without shortcuts."""
    return cifar_resnet(20, num_classes, in_chans, residual=False, drop_rate=drop_rate)


@register_model
def plain32(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> ResNet:
    """CIFAR plain net with 32 layers: ResNet-32 without shortcuts."""
    return cifar_resnet(32, num_classes, in_chans, residual=False, drop_rate=drop_rate)


@register_model
def plain44(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> ResNet:
    """CIFAR plain net with 44 layers: ResNet-44 without shortcuts."""
    return cifar_resnet(44, num_classes, in_chans, residual=False, drop_rate=drop_rate)


@register_model
def plain56(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> ResNet:
    """CIFAR plain net with 56 layers: ResNet-56 without shortcuts."""
    return cifar_resnet(56, num_classes, in_chans, residual=False, drop_rate=drop_rate)


@register_model
def plain110(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0) -> ResNet:
    """CIFAR plain net with 110 layers: ResNet-110 without shortcuts."""
    return cifar_resnet(110, num_classes, in_chans, residual=False, drop_rate=drop_rate)
