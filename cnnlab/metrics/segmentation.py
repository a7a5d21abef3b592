"""Semantic segmentation metrics from one confusion matrix: per-class IoU, mIoU, pixel accuracy.

Every pixel whose true label is ``ignore_index`` (255, VOC's object boundaries) is left out.
With C[t, p] the number of pixels of true class t predicted as p:

    IoU_k     = C[k, k] / (sum_p C[k, p] + sum_t C[t, k] - C[k, k])    (intersection over union)
    mIoU      = mean of IoU_k over the classes that occur (in the truth or the prediction)
    pixel_acc = trace(C) / sum(C)

A class that neither occurs nor is predicted has no IoU (0 / 0) and is left out of the mean,
as in the VOC devkit and torchmetrics' JaccardIndex over a whole split.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import torch

IGNORE_INDEX = 255


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """pred, target i64 (...) of class indices -> i64 (K, K), rows true class, columns predicted."""
    keep = target != ignore_index
    t, p = target[keep].long(), pred[keep].long()
    bad = (t < 0) | (t >= num_classes)
    if bad.any():
        raise ValueError(f"true label {int(t[bad][0])} is outside 0..{num_classes - 1} and is not {ignore_index}")
    return torch.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_per_class(confusion: torch.Tensor) -> torch.Tensor:
    """(K, K) confusion -> f64 (K,) IoU per class, NaN where the class is neither true nor predicted."""
    cm = confusion.double()
    inter = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(inter, float("nan")))


def segmentation_scores(confusion: torch.Tensor, classes: Sequence[str]) -> dict[str, float]:
    """miou, pixel_acc and iou_<class> (only classes that occur) from a confusion matrix."""
    iou = iou_per_class(confusion)
    present = ~iou.isnan()
    total = float(confusion.sum())
    out = {"miou": float(iou[present].mean()) if present.any() else 0.0,
           "pixel_acc": float(confusion.diagonal().sum()) / total if total else 0.0}
    for name, v, ok in zip(classes, iou.tolist(), present.tolist()):
        if ok:
            out[f"iou_{metric_name(name)}"] = v
    return out


def metric_name(name: str) -> str:
    """A class name as a plain metric-key suffix: 'potted plant' -> 'potted_plant'."""
    return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_").lower() or "class"


class SegmentationEvaluator:
    """torchmetrics-shaped: ``update`` adds a batch's confusion matrix and loss sum; ``compute`` scores them."""

    def __init__(self, classes: Sequence[str]):
        self.classes = list(classes)
        self.reset()

    def reset(self) -> None:
        k = len(self.classes)
        self.confusion = torch.zeros(k, k, dtype=torch.int64)
        self.loss = torch.zeros((), dtype=torch.float64)
        self.n = torch.zeros((), dtype=torch.float64)

    @torch.no_grad()
    def update(self, out: dict[str, Any]) -> None:
        self.confusion += out["confusion"].detach().cpu().long()
        self.loss += float(out.get("loss_sum", 0.0))
        self.n += float(out.get("n", 0))

    def tensors(self) -> list[torch.Tensor]:
        return [self.n, self.loss, self.confusion]

    def sync(self) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            for t in self.tensors():
                dist.all_reduce(t)

    def compute(self) -> dict[str, Any]:
        n = max(1.0, float(self.n))
        return {"loss": float(self.loss) / n, **segmentation_scores(self.confusion, self.classes), "count": int(self.n),
                "confusion": self.confusion.tolist()}
