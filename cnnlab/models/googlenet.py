"""GoogLeNet / Inception v1 (Szegedy et al. 2014), batch-normalized as in torchvision.

An Inception module runs four branches in parallel and concatenates them along channels:
1x1 conv | 1x1 "reduce" -> 3x3 | 1x1 "reduce" -> 5x5 | 3x3 max pool -> 1x1 "pool proj".
The 1x1 reductions (bottlenecks) keep the expensive 3x3/5x5 convs cheap. Widths are the
paper's Table 1. Two auxiliary classifiers on top of inception 4a and 4d (avg pool -> 1x1 conv
128 -> FC 1024 -> dropout 0.7 -> FC classes) add gradient to the middle of the network during
training, their losses weighted by ``aux_loss_weight = 0.3``; at inference they are dropped.

Differences from the paper, kept so that torchvision's (TF-slim's) weights load:
- every conv is followed by batch norm (eps 1e-3) and there is no LRN;
- the "5x5" branch uses a 3x3 conv (``branch3_kernel=5`` restores the paper's 5x5);
- the pool before inception 5a is 2x2/2 instead of 3x3/2 (same 7x7 output at 224x224);
- the auxiliary heads pool adaptively to 4x4 (the paper's 5x5/3 pool gives 4x4 at 224x224).
6,624,904 parameters, 13,004,888 with the auxiliary heads. Accepts inputs from 32x32 up.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.models.base import Backbone
from cnnlab.models.registry import register_model


class BasicConv2d(nn.Module):
    """conv (no bias) -> batch norm -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Four parallel branches, concatenated: out channels = ch1x1 + ch3x3 + ch5x5 + pool_proj."""

    def __init__(self, cin: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int, branch3_kernel: int = 3):
        super().__init__()
        self.branch1 = BasicConv2d(cin, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, ch3x3red, 1), BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(
            BasicConv2d(cin, ch5x5red, 1), BasicConv2d(ch5x5red, ch5x5, branch3_kernel, padding=branch3_kernel // 2)
        )
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), BasicConv2d(cin, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, dim=1)  # (B, out_channels, H, W)


class InceptionAux(nn.Module):
    """Auxiliary classifier: avg pool to 4x4 -> 1x1 conv 128 -> FC 1024 -> dropout 0.7 -> FC classes."""

    def __init__(self, cin: int, num_classes: int, drop_rate: float = 0.7):
        super().__init__()
        self.conv = BasicConv2d(cin, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))  # (B, 128, 4, 4)
        x = F.relu(self.fc1(torch.flatten(x, 1)), inplace=True)  # (B, 1024)
        x = F.dropout(x, self.drop_rate, self.training)
        return self.fc2(x)  # (B, num_classes)


class GoogLeNet(Backbone):
    """Stem, nine Inception modules in three groups, global average pool, dropout, FC."""

    aux_loss_weight = 0.3

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = False,
        drop_rate: float = 0.4,
        branch3_kernel: int = 3,
    ):
        super().__init__()
        k = branch3_kernel
        self.conv1 = BasicConv2d(in_chans, 64, 7, stride=2, padding=3)  # (B, 64, 112, 112)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)  # (B, 64, 56, 56)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1)  # (B, 192, 56, 56)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)  # (B, 192, 28, 28)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32, k)  # (B, 256, 28, 28)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64, k)  # (B, 480, 28, 28)
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)  # (B, 480, 14, 14)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64, k)  # (B, 512, 14, 14)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64, k)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64, k)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64, k)  # (B, 528, 14, 14)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128, k)  # (B, 832, 14, 14)
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)  # (B, 832, 7, 7)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128, k)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128, k)  # (B, 1024, 7, 7)
        self.aux_logits = aux_logits
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes)
            self.aux2 = InceptionAux(528, num_classes)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(drop_rate)
        self.num_features = 1024
        self.fc = nn.Linear(1024, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def _trunk(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        aux: list[torch.Tensor] = []
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))  # (B, 192, H/8, W/8)
        x = self.maxpool3(self.inception3b(self.inception3a(x)))  # (B, 480, H/16, W/16)
        x = self.inception4a(x)  # (B, 512, H/16, W/16)
        if with_aux:
            aux.append(self.aux1(x))
        x = self.inception4d(self.inception4c(self.inception4b(x)))  # (B, 528, H/16, W/16)
        if with_aux:
            aux.append(self.aux2(x))
        x = self.maxpool4(self.inception4e(x))  # (B, 832, H/32, W/32)
        x = self.inception5b(self.inception5a(x))  # (B, 1024, H/32, W/32)
        return x, aux  # (B, 1024, H/32, W/32)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._trunk(x, with_aux=False)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (B, 1024)
        return x if pre_logits else self.fc(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits; in training mode with ``aux_logits`` also the two auxiliary logits: (logits, [aux1, aux2])."""
        with_aux = self.aux_logits and self.training
        features, aux = self._trunk(x, with_aux)
        logits = self.forward_head(features)
        if with_aux:
            return logits, aux
        return logits

    def convert_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Drop auxiliary-head tensors when this model has none (torchvision's files carry them)."""
        if self.aux_logits:
            return state_dict
        return {k: v for k, v in state_dict.items() if not k.startswith(("aux1.", "aux2."))}

    def get_classifier(self) -> nn.Module:
        return self.fc

    def aux_classifiers(self) -> list[nn.Module]:
        """The auxiliary heads' final layers: replaced with the main head when the class count changes."""
        return [self.aux1.fc2, self.aux2.fc2] if self.aux_logits else []

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes)
        if self.aux_logits:
            self.aux1.fc2 = nn.Linear(1024, num_classes)
            self.aux2.fc2 = nn.Linear(1024, num_classes)

    def stages(self) -> list[nn.Module]:
        """Stem (1/4), inception 3a-b (1/8), 4a-e (1/16), 5a-b (1/32): each max pool opens the next stage, so every
        stage ends on its full-resolution map (192, 480, 832, 1024 channels); aux heads are not stages."""
        return [
            nn.Sequential(self.conv1, self.maxpool1, self.conv2, self.conv3),
            nn.Sequential(self.maxpool2, self.inception3a, self.inception3b),
            nn.Sequential(self.maxpool3, self.inception4a, self.inception4b, self.inception4c, self.inception4d, self.inception4e),
            nn.Sequential(self.maxpool4, self.inception5a, self.inception5b),
        ]


@register_model
def googlenet(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.4, aux_logits: bool = False, branch3_kernel: int = 3) -> GoogLeNet:
    """GoogLeNet (Inception v1) with batch norm; ``aux_logits=True`` adds the two auxiliary classifiers."""
    return GoogLeNet(num_classes, in_chans, aux_logits=aux_logits, drop_rate=drop_rate, branch3_kernel=branch3_kernel)
