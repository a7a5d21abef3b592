"""The linear (softmax) classifier of the course: scores = W x + b on the flattened input.

Also the "softmax head" trained on precomputed features (``--on-features``): there the input
is a feature vector, so ``in_chans`` is the feature size and ``img_size`` is 1.

As a backbone its one "feature map" is the input itself, flattened to (B, C*H*W, 1, 1): on a
feature vector that is the vector, and ``forward_head(x, pre_logits=True)`` gives it back as
(B, D). ``feature_info`` has that one entry (reduction ``img_size``); ``stages()`` is that one
parameter-free stage, so ``--freeze`` freezes nothing.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model


class InputAsMap(nn.Module):
    """(B, C, H, W) or (B, D) -> (B, C*H*W, 1, 1): the input as a one-pixel map (no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :, None, None]


class LinearClassifier(Classifier):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, img_size: int = 32, drop_rate: float = 0.0):
        super().__init__()
        self.in_chans, self.img_size = in_chans, img_size
        self.num_features = in_chans * img_size * img_size
        self.drop_rate = drop_rate
        self.features = InputAsMap()
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, C*H*W, 1, 1)

    @property
    def feature_info(self) -> list[dict]:
        return [dict(num_chs=self.num_features, reduction=self.img_size, module="features")]

    def stages(self) -> list[nn.Module]:
        """The one parameter-free stage (the input map): the linear classifier is all head."""
        return [self.features]


@register_model
def linear(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, drop_rate: float = 0.0) -> LinearClassifier:
    """Linear softmax classifier on raw pixels (or on feature vectors with img_size=1)."""
    return LinearClassifier(num_classes, in_chans, img_size, drop_rate)
