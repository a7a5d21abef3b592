"""Pieces the detectors share: a conv-BN-activation block and the score -> boxes post-processing."""

from __future__ import annotations

import torch
from torch import nn


class ConvBNAct(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> LeakyReLU(0.1), YOLO's block; ``k`` odd keeps the size at stride 1."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1):
        super().__init__(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(0.1, inplace=True))


def select_detections(boxes: torch.Tensor, class_scores: torch.Tensor, score_threshold: float, iou_threshold: float,
                      max_detections: int, pre_nms: int = 1000) -> dict[str, torch.Tensor]:
    """One image: boxes (D, 4) xyxy and per-class scores (D, C) -> the kept detections.

    Every (box, class) pair scoring above ``score_threshold`` is a candidate (a box may stand for two
    classes, as in SSD and YOLOv2); the ``pre_nms`` best go through per-class non-max suppression, then the
    ``max_detections`` best are kept."""
    from cnnlab.ops.boxes import batched_nms

    scores = class_scores.float()
    idx, cls = (scores > score_threshold).nonzero(as_tuple=True)
    s = scores[idx, cls]
    if s.numel() > pre_nms:
        s, top = s.topk(pre_nms)
        idx, cls = idx[top], cls[top]
    b = boxes[idx].float()
    keep = batched_nms(b, s, cls, iou_threshold)[:max_detections]
    return {"boxes": b[keep], "scores": s[keep], "labels": cls[keep]}


def backbone_levels(backbone: nn.Module) -> list[dict]:
    """The backbone's feature_info with integer strides (the contract's ``reduction``)."""
    if not hasattr(backbone, "feature_info"):
        raise ValueError(f"{type(backbone).__name__} does not implement the backbone contract (feature_info)")
    return [dict(info, index=k) for k, info in enumerate(backbone.feature_info)]
