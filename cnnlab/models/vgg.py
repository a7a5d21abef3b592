"""VGGNet (Simonyan & Zisserman 2014): only 3x3 convolutions (stride 1, pad 1) and 2x2 max pools.

Configurations A, B, D, E of the paper's Table 1 are vgg11, vgg13, vgg16, vgg19 (138,357,544 and
143,667,240 parameters for the last two); ``_bn`` adds batch normalization after every conv
(a later addition, not in the paper). Three stacked 3x3 convs see a 7x7 region with fewer
parameters and more non-linearities than one 7x7 conv: the course's point about this net.

Module names follow torchvision (``features.N``, ``classifier.{0,3,6}``), so its weights load.
An adaptive average pool to 7x7 before FC6 (identity at 224x224) accepts inputs from 32x32 up.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import ShapeError
from cnnlab.models.base import FCStackClassifier
from cnnlab.models.registry import register_model

# Numbers are 3x3 conv widths, "M" a 2x2 max pool; one row per stage.
CONFIGS: dict[str, list[list[int]]] = {
    "A": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "B": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "D": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "E": [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


class VGG(FCStackClassifier):
    """Five conv stages, then FC6/FC7 (4096 each) and the head; ``num_features`` is FC7's 4096."""

    def __init__(
        self,
        stages: list[list[int]],
        num_classes: int = 1000,
        in_chans: int = 3,
        batch_norm: bool = False,
        fc_width: int = 4096,
        drop_rate: float = 0.5,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        self._stage_ends: list[int] = []
        cin = in_chans
        for widths in stages:
            for w in widths:
                layers.append(nn.Conv2d(cin, w, 3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(w))
                layers.append(nn.ReLU(inplace=True))
                cin = w
            layers.append(nn.MaxPool2d(2, 2))  # halve H, W
            self._stage_ends.append(len(layers))
        self.features = nn.Sequential(*layers)  # (B, 512, H/32, W/32)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(cin * 7 * 7, fc_width),  # FC6
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(fc_width, fc_width),  # FC7
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(fc_width, num_classes),  # FC8, the head
        )
        self.num_features = fc_width
        self.min_input_size = 2 ** len(stages)  # each stage halves the map
        self._init_weights()

    def _init_weights(self) -> None:
        """He initialization for the convs (the paper pre-trained config A instead), small normal for FC."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < self.min_input_size:
            raise ShapeError(f"VGG needs inputs of at least {self.min_input_size}x{self.min_input_size} pixels, "
                             f"got {tuple(x.shape[-2:])}; resize the images (e.g. --img-size 32)")
        return self.features(x)  # (B, 512, h, w): 7x7 at 224x224

    def stages(self) -> list[nn.Module]:
        """The five conv stages (each ending in its max pool), then FC6 and FC7."""
        starts = [0] + self._stage_ends[:-1]
        convs = [self.features[a:b] for a, b in zip(starts, self._stage_ends)]
        return convs + [self.classifier[0:3], self.classifier[3:6]]


def _vgg(cfg: str, batch_norm: bool, num_classes: int, in_chans: int, drop_rate: float) -> VGG:
    return VGG(CONFIGS[cfg], num_classes, in_chans, batch_norm=batch_norm, drop_rate=drop_rate)


@register_model
def vgg11(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> VGG:
    """VGG config A: 8 conv + 3 FC layers."""
    return _vgg("A", False, num_classes, in_chans, drop_rate)


@register_model
def vgg13(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> VGG:
    """VGG config B: 10 conv + 3 FC layers."""
    return _vgg("B", False, num_classes, in_chans, drop_rate)


@register_model
def vgg16(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> VGG:
    """VGG config D: 13 conv + 3 FC layers (138,357,544 parameters)."""
    return _vgg("D", False, num_classes, in_chans, drop_rate)


@register_model
def vgg19(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> VGG:
    """VGG config E: 16 conv + 3 FC layers (143,667,240 parameters)."""
    return _vgg("E", False, num_classes, in_chans, drop_rate)


@register_model
def vgg11_bn(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> VGG:
    """VGG config A with batch norm after every conv."""
    return _vgg("A", True, num_classes, in_chans, drop_rate)


@register_model
def vgg13_bn(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> VGG:
    """VGG config B with batch norm after every conv."""
    return _vgg("B", True, num_classes, in_chans, drop_rate)


@register_model
def vgg16_bn(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> VGG:
    """VGG config D with batch norm after every conv."""
    return _vgg("D", True, num_classes, in_chans, drop_rate)


@register_model
def vgg19_bn(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.5) -> VGG:
    """VGG config E with batch norm after every conv."""
    return _vgg("E", True, num_classes, in_chans, drop_rate)
