"""MobileNetV2 (Sandler et al. 2018): inverted residuals with linear bottlenecks.

Each block expands the channels t times with a 1x1 conv, filters them with a 3x3 depthwise conv,
and projects back with a linear 1x1 conv (no ReLU: a ReLU in the narrow bottleneck would destroy
information); the shortcut joins the narrow ends. State-dict keys follow torchvision
(``features.N...``, ``classifier.1``), so torchvision's ImageNet file loads as-is:
``create_model("mobilenet_v2", weights="imagenet")`` (see cnnlab/models/pretrained.py).
3,504,872 parameters at 1000 classes, as published.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model

# (expansion t, output channels c, repeats n, first stride s): the paper's Table 2
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor``, never below 90% of ``v`` (the reference rule)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class ConvBNReLU6(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = round(cin * expand)
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = [ConvBNReLU6(cin, hidden, 1)] if expand != 1 else []
        layers += [ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden),  # depthwise
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]  # linear bottleneck
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(Classifier):

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0, drop_rate: float = 0.2):
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        cin = make_divisible(32 * width_mult)
        self.num_features = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNReLU6(in_chans, cin, 3, 2)]  # (B, 32, H/2, W/2)
        for t, c, n, s in SETTINGS:
            cout = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(ConvBNReLU6(cin, self.num_features, 1))  # (B, 1280, H/32, W/32)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(self.num_features, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 1280, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))  # (B, 1280)
        return x if pre_logits else self.classifier(x)

    def get_classifier(self) -> nn.Module:
        return self.classifier[1]

    def reset_classifier(self, num_classes: int) -> None:
        self.classifier[1] = nn.Linear(self.num_features, num_classes)

    def stages(self) -> list[nn.Module]:
        """By resolution: 1/2 (stem + first block), 1/4, 1/8, 1/16, 1/32 (with the final 1x1 conv)."""
        f = self.features
        return [f[0:2], f[2:4], f[4:7], f[7:14], f[14:19]]


@register_model
def mobilenet_v2(num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0, drop_rate: float = 0.2) -> MobileNetV2:
    """MobileNetV2 (Sandler et al. 2018): inverted residuals, linear bottlenecks; 3,504,872 parameters at 1000 classes."""
    return MobileNetV2(num_classes, in_chans, width_mult, drop_rate)
