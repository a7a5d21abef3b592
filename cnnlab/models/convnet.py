"""A small VGG-style conv net with batch norm: the course's "conv-bn-relu, pool" pattern.

Three stages of two 3x3 conv-bn-relu layers each, 2x2 max pooling between stages, global
average pooling and a linear classifier. Works for any input of at least 4x4 pixels.

The switches the lab's experiments turn (defaults give the registered net unchanged):
``activation`` (relu, sigmoid, tanh, leaky_relu, elu, maxout), ``norm`` (batch, none, lrn:
AlexNet's local response normalization) and ``depth`` (conv layers per stage).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model

ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu", "elu", "maxout")
NORMS = ("batch", "none", "lrn")


class ChannelMaxout(nn.Module):
    """Maxout over pairs of channels: (B, 2C, H, W) -> (B, C, H, W) (the conv before it has twice the filters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from cnnlab.nn.maxout import maxout

        return maxout(x, 2, dim=1)


def make_activation(name: str) -> nn.Module:
    """The nonlinearity by name (maxout needs a layer with twice the outputs before it)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation {name!r}: choose one of {', '.join(ACTIVATIONS)}")
    return {"relu": lambda: nn.ReLU(inplace=True), "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
            "leaky_relu": lambda: nn.LeakyReLU(0.01, inplace=True), "elu": lambda: nn.ELU(inplace=True),
            "maxout": ChannelMaxout}[name]()


def conv_bn_relu(cin: int, cout: int, activation: str = "relu", norm: str = "batch") -> nn.Sequential:
    """3x3 conv -> norm -> nonlinearity (conv with bias when there is no batch norm to absorb it)."""
    if norm not in NORMS:
        raise ValueError(f"norm {norm!r}: choose one of {', '.join(NORMS)}")
    k = 2 if activation == "maxout" else 1
    layers: list[nn.Module] = [nn.Conv2d(cin, k * cout, 3, padding=1, bias=norm != "batch")]
    if norm == "batch":
        layers.append(nn.BatchNorm2d(k * cout))
    layers.append(make_activation(activation))
    if norm == "lrn":  # AlexNet's order: after the nonlinearity (alexnet.py's constants)
        from cnnlab.models.alexnet import LRN_ALPHA, LRN_BETA, LRN_K, LRN_SIZE

        layers.append(nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_ALPHA * LRN_SIZE, beta=LRN_BETA, k=LRN_K))
    return nn.Sequential(*layers)


class SmallConvNet(Classifier):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, widths: tuple[int, ...] = (32, 64, 128), drop_rate: float = 0.0,
                 activation: str = "relu", norm: str = "batch", depth: int = 2):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth {depth}: at least one conv layer per stage")
        layers: list[nn.Module] = []
        self._stage_starts = []
        cin = in_chans
        for i, w in enumerate(widths):
            self._stage_starts.append(len(layers))
            if i > 0:
                layers.append(nn.MaxPool2d(2))  # halve H, W
            for _ in range(depth):
                layers.append(conv_bn_relu(cin, w, activation, norm))
                cin = w
        self.features = nn.Sequential(*layers)
        self.num_features = cin
        self.drop_rate = drop_rate
        self.head = nn.Linear(cin, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, C, H/4, W/4)

    def stages(self) -> list[nn.Module]:
        """The conv stages in order (for --freeze N): [conv, conv], then [pool, conv, conv] per later stage."""
        ends = self._stage_starts[1:] + [len(self.features)]
        return [self.features[a:b] for a, b in zip(self._stage_starts, ends)]


@register_model
def convnet_bn(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0, width: int = 32, activation: str = "relu",
               norm: str = "batch", depth: int = 2) -> SmallConvNet:
    """Small conv net with batch norm (widths w, 2w, 4w; about 0.29M parameters at w=32)."""
    return SmallConvNet(num_classes, in_chans, widths=(width, 2 * width, 4 * width), drop_rate=drop_rate,
                        activation=activation, norm=norm, depth=depth)
