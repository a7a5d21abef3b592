"""The classifier contract shared by the model families whose head is one linear layer.

A subclass defines ``forward_features(x) -> (B, num_features)`` and sets ``num_features``,
``drop_rate`` and the linear classifier under the attribute named by ``head_attr``
("head", or "fc" where torchvision's state-dict keys must load).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Classifier(nn.Module):
    head_attr = "head"
    num_features: int
    drop_rate: float = 0.0

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout (when drop_rate > 0) then the linear classifier: (B, num_features) -> (B, classes)."""
        if self.drop_rate > 0:
            x = F.dropout(x, self.drop_rate, self.training)
        return getattr(self, self.head_attr)(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return getattr(self, self.head_attr)

    def reset_classifier(self, num_classes: int) -> None:
        setattr(self, self.head_attr, nn.Linear(self.num_features, num_classes))


class FCStackClassifier(nn.Module):
    """The contract for nets whose fully connected stack is ``self.classifier`` (AlexNet, VGG):
    ``forward_features`` returns FC7's output (the "CNN code"), the head is the stack's last layer
    (its dropout sits inside the stack, before the head)."""

    num_features: int
    classifier: nn.Sequential

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier[-1](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier[-1]

    def reset_classifier(self, num_classes: int) -> None:
        self.classifier[-1] = nn.Linear(self.num_features, num_classes)
