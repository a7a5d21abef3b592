"""Box formats, overlaps, YOLO's cell encoding and non-max suppression; thin over torchvision.ops
where it has the op.

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


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of (N, 4) xyxy boxes: (N,)."""
    return tv_ops.box_area(boxes)


def clip_boxes(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(..., 4) xyxy boxes clipped to an ``h`` x ``w`` image (x to [0, w], y to [0, h])."""
    return tv_ops.clip_boxes_to_image(boxes, (h, w))


def remove_degenerate(boxes: torch.Tensor, min_size: float = 0.0) -> torch.Tensor:
    """Keep mask (N,) bool: boxes with positive width and height, both at least ``min_size`` pixels.

    A box with x2 <= x1 or y2 <= y1 has no area and no defined IoU; drop such boxes (and boxes too
    small to learn from) before training targets or NMS are built.
    """
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return (w > 0) & (h > 0) & (w >= min_size) & (h >= min_size)


# ---------------------------------------------------------------------------------------------
# YOLO's cell-relative encoding (deeplearning.ai, "Bounding box predictions")
# ---------------------------------------------------------------------------------------------

def _grid_hw(grid: int | tuple[int, int]) -> tuple[int, int]:
    return (grid, grid) if isinstance(grid, int) else (int(grid[0]), int(grid[1]))


def encode_cells(boxes_xyxy: torch.Tensor, img_h: int, img_w: int, grid: int | tuple[int, int]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Assign each box to the grid cell holding its midpoint and encode it relative to that cell.

    The image is cut into ``S_h x S_w`` cells (``grid`` = (S_h, S_w) or S for a square grid). Each
    cell's upper-left corner is (0, 0) and its lower-right corner (1, 1), as in the course:
    ``b_x, b_y`` in [0, 1) locate the midpoint inside its cell; ``b_h, b_w`` are the box height and
    width in units of the cell size (larger than 1 when the box spans several cells). A midpoint
    on the far border of the image (x = img_w) goes to the last cell with offset 1.0.

    Returns ``rows`` i64 (N,), ``cols`` i64 (N,) and ``b`` (N, 4) as (b_x, b_y, b_h, b_w).
    """
    s_h, s_w = _grid_hw(grid)
    cell_h, cell_w = img_h / s_h, img_w / s_w
    cx = (boxes_xyxy[:, 0] + boxes_xyxy[:, 2]) / 2  # (N,) pixels
    cy = (boxes_xyxy[:, 1] + boxes_xyxy[:, 3]) / 2
    gx, gy = cx / cell_w, cy / cell_h  # (N,) midpoint in cell units
    cols = gx.floor().long().clamp(0, s_w - 1)
    rows = gy.floor().long().clamp(0, s_h - 1)
    b_x, b_y = gx - cols, gy - rows
    b_h = (boxes_xyxy[:, 3] - boxes_xyxy[:, 1]) / cell_h
    b_w = (boxes_xyxy[:, 2] - boxes_xyxy[:, 0]) / cell_w
    return rows, cols, torch.stack([b_x, b_y, b_h, b_w], dim=-1)  # (N,), (N,), (N, 4)


def decode_cells(rows: torch.Tensor, cols: torch.Tensor, b: torch.Tensor, img_h: int, img_w: int,
                 grid: int | tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`encode_cells`: cell indices (N,) and (b_x, b_y, b_h, b_w) (N, 4) -> xyxy pixels."""
    s_h, s_w = _grid_hw(grid)
    cell_h, cell_w = img_h / s_h, img_w / s_w
    cx = (cols.to(b.dtype) + b[:, 0]) * cell_w  # (N,) pixels
    cy = (rows.to(b.dtype) + b[:, 1]) * cell_h
    h, w = b[:, 2] * cell_h, b[:, 3] * cell_w
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)  # (N, 4)


# ---------------------------------------------------------------------------------------------
# Non-max suppression
# ---------------------------------------------------------------------------------------------

def non_max_suppression(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor | None = None,
                        score_threshold: float = 0.0, iou_threshold: float = 0.5) -> torch.Tensor:
    """Non-max suppression as the course states it; returns kept indices i64 (K,), highest score first.

    1. Discard every box with p_c <= ``score_threshold``.
    2. While boxes remain: pick the one with the largest p_c, output it, and discard every remaining
       box whose IoU with it is >= ``iou_threshold``.
    With ``labels`` the procedure runs per class: boxes of different classes never suppress each other.

    This is the teaching version (a plain loop). The course discards IoU >= threshold;
    torchvision's ``nms`` discards IoU > threshold (strictly greater). The two differ only on exact
    ties, which continuous box coordinates almost never produce. Inference uses :func:`batched_nms`.
    """
    candidates = torch.nonzero(scores > score_threshold).flatten()  # step 1
    order = candidates[torch.argsort(scores[candidates], descending=True, stable=True)]
    keep = []
    while order.numel() > 0:  # step 2
        best, rest = order[0], order[1:]
        keep.append(int(best))
        iou = box_iou(boxes[best].unsqueeze(0), boxes[rest])[0]  # (R,)
        suppress = iou >= iou_threshold
        if labels is not None:
            suppress &= labels[rest] == labels[best]
        order = rest[~suppress]
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor | None,
                iou_threshold: float = 0.5) -> torch.Tensor:
    """Fast per-class NMS for inference (torchvision.ops.batched_nms): kept indices i64, highest score first.

    Suppresses IoU > ``iou_threshold`` (strictly greater; see :func:`non_max_suppression`).
    ``labels=None`` treats all boxes as one class. Filter by score before calling it.
    """
    if labels is None:
        return tv_ops.nms(boxes, scores, iou_threshold)
    return tv_ops.batched_nms(boxes, scores, labels, iou_threshold)
