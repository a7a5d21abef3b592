"""Box formats and overlaps, with shape docstrings; thin over torchvision.ops where it has the op.

Formats: ``xyxy`` (x1, y1, x2, y2) pixels, torchvision's and DESIGN's batch format; ``xywh``
(x, y, width, height) as COCO stores boxes; ``cxcywh`` (centre x, centre y, width, height).
"""

from __future__ import annotations

import torch
from torchvision import ops as tv_ops


def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """(..., 4) boxes from one of xyxy / xywh / cxcywh to another."""
    return tv_ops.box_convert(boxes, in_fmt, out_fmt)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), xyxy: (N, M)."""
    return tv_ops.box_iou(a, b)


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of matching pairs: ``a`` and ``b`` (..., 4) xyxy -> (...,); 0 where both boxes are empty."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda t: (t[..., 2:] - t[..., :2]).clamp(min=0).prod(-1)  # noqa: E731
    union = area(a) + area(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))
