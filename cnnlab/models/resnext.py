"""ResNeXt (Xie, Girshick, Dollar, Tu & He 2017): ResNet bottlenecks with a grouped 3x3 conv.

"32x4d" means cardinality 32 (groups in the 3x3 conv) of width 4 each, so the first stage's
3x3 conv is 128 wide (and doubles every stage). At about ResNet-50's cost, more, thinner paths
give better accuracy. Module names follow torchvision, so its weights load.
resnext50_32x4d has 25,028,904 parameters, resnext101_32x8d 88,791,336.
"""

from __future__ import annotations

from cnnlab.models.registry import register_model
from cnnlab.models.resnet import Bottleneck, ResNet


@register_model
def resnext50_32x4d(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0) -> ResNet:
    """ResNeXt-50 (32x4d): bottlenecks [3, 4, 6, 3], 32 groups of width 4."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, groups=32, base_width=4, drop_rate=drop_rate)


@register_model
def resnext101_32x8d(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0) -> ResNet:
    """ResNeXt-101 (32x8d): bottlenecks [3, 4, 23, 3], 32 groups of width 8."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, in_chans, groups=32, base_width=8, drop_rate=drop_rate)
