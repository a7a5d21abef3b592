"""The linear (softmax) classifier of the course: scores = W x + b on the flattened input.

Also the "softmax head" trained on precomputed features (``--on-features``): there the input
is a feature vector, so ``in_chans`` is the feature size and ``img_size`` is 1.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model


class LinearClassifier(Classifier):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, img_size: int = 32, drop_rate: float = 0.0):
        super().__init__()
        self.num_features = in_chans * img_size * img_size
        self.drop_rate = drop_rate
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The input itself as a (B, C*H*W, 1, 1) map: on feature vectors (img_size=1) it is the vector."""
        return x.flatten(1)[:, :, None, None]

    def feature_stages(self) -> list[nn.Module]:
        return []

    def stages(self) -> list[nn.Module]:
        return []


@register_model
def linear(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, drop_rate: float = 0.0) -> LinearClassifier:
    """Linear softmax classifier on raw pixels (or on feature vectors with img_size=1)."""
    return LinearClassifier(num_classes, in_chans, img_size, drop_rate)
