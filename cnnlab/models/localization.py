"""Classification + localization and landmark regression heads on any backbone of the zoo.

The course's localization target for one object is y = [p_c, b_x, b_y, b_h, b_w, c_1..c_K]:
p_c "is there an object", (b_x, b_y) its centre and (b_h, b_w) its size as fractions of the
image, and the class scores. Landmarks regress K points (l_1x, l_1y, ..., l_Kx, l_Ky) in a fixed
order. Both heads read the backbone's last feature map (``forward_features``) through a small
adaptive pool that keeps a coarse spatial layout (where things are), then two FC layers.
"""

from __future__ import annotations

import torch
from torch import nn


class SpatialHead(nn.Module):
    """(B, C, h, w) -> (B, out): adaptive average pool to ``grid`` x ``grid``, flatten, FC-ReLU-FC."""

    def __init__(self, in_chs: int, out: int, grid: int = 4, hidden: int = 256, drop_rate: float = 0.0):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.fc1 = nn.Linear(in_chs * grid * grid, hidden)
        self.drop = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x).flatten(1)  # (B, C * grid * grid)
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


class _BackboneHead(nn.Module):
    """A zoo backbone (its own classifier unused) followed by a task head."""

    def __init__(self, backbone: nn.Module, out: int, grid: int, hidden: int, drop_rate: float):
        super().__init__()
        if not hasattr(backbone, "feature_info"):
            raise ValueError(f"{type(backbone).__name__} does not implement the backbone contract (feature_info)")
        self.backbone = backbone
        self.head = SpatialHead(backbone.feature_info[-1]["num_chs"], out, grid, hidden, drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)  # (B, C, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def stages(self) -> list[nn.Module]:
        return self.backbone.stages()


class Localizer(_BackboneHead):
    """Outputs (B, 5 + K): [p_c logit, b_x, b_y, b_h, b_w (fractions minus 0.5), class logits c_1..c_K]."""

    def __init__(self, backbone: nn.Module, num_classes: int, grid: int = 4, hidden: int = 256, drop_rate: float = 0.0):
        super().__init__(backbone, 5 + num_classes, grid, hidden, drop_rate)
        self.num_classes = num_classes

    @staticmethod
    def split(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(p_c logits (B,), box fractions (B, 4) as (b_x, b_y, b_h, b_w), class logits (B, K)).

        The box is linear in the output (0.5 + y): a sigmoid would saturate early in training and stall."""
        return y[:, 0], 0.5 + y[:, 1:5], y[:, 5:]


class LandmarkRegressor(_BackboneHead):
    """Outputs (B, 3K): K points as (x, y) fractions of the image minus 0.5, then K visibility logits."""

    def __init__(self, backbone: nn.Module, num_keypoints: int, grid: int = 4, hidden: int = 256, drop_rate: float = 0.0):
        super().__init__(backbone, 3 * num_keypoints, grid, hidden, drop_rate)
        self.num_keypoints = num_keypoints



def split_points(y: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """LandmarkRegressor output (B, 3K) -> (points (B, K, 2) as (x, y) fractions of the image, visibility logits (B, K))."""
    return (0.5 + y[:, :2 * k]).reshape(-1, k, 2), y[:, 2 * k:]


def boxes_to_course(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """xyxy pixels (..., 4) -> the course's (b_x, b_y, b_h, b_w) as fractions of the image."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (y2 - y1) / h, (x2 - x1) / w], -1)


def course_to_boxes(b: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The course's (b_x, b_y, b_h, b_w) fractions (..., 4) -> xyxy pixels."""
    bx, by, bh, bw = b.unbind(-1)
    return torch.stack([(bx - bw / 2) * w, (by - bh / 2) * h, (bx + bw / 2) * w, (by + bh / 2) * h], -1)
