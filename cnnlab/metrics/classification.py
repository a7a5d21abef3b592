"""Top-1 / top-k accuracy, per-class accuracy and the confusion matrix, accumulated over batches."""

from __future__ import annotations

import torch


class ClassificationMetrics:
    """Accumulates a confusion matrix and top-k hits; ``compute()`` returns plain numbers.

    The state is three tensors, so replicas under DDP combine with one all-reduce (``sync``).
    """

    def __init__(self, num_classes: int, topk: int = 5):
        self.num_classes = num_classes
        self.topk = min(topk, num_classes)
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)  # [true, predicted]
        self.topk_hits = torch.zeros((), dtype=torch.int64)
        self.loss_sum = torch.zeros((), dtype=torch.float64)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, targets: torch.Tensor, loss_sum: float | torch.Tensor = 0.0) -> None:
        logits, targets = logits.detach().float().cpu(), targets.detach().cpu()  # (B, K), (B,)
        pred = logits.argmax(1)
        k = self.num_classes
        self.confusion += torch.bincount(targets * k + pred, minlength=k * k).view(k, k)
        top = logits.topk(self.topk, dim=1).indices  # (B, topk)
        self.topk_hits += (top == targets[:, None]).any(1).sum()
        self.loss_sum += float(loss_sum)

    def sync(self) -> None:
        """Sum the state over DDP processes (no-op when not distributed)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            for t in (self.confusion, self.topk_hits, self.loss_sum):
                dist.all_reduce(t)

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    def compute(self) -> dict:
        n = max(1, self.count)
        per_class_total = self.confusion.sum(1).clamp(min=1)
        per_class = (self.confusion.diag().double() / per_class_total).tolist()
        return {
            "acc": float(self.confusion.diag().sum()) / n,
            f"top{self.topk}": float(self.topk_hits) / n,
            "loss": float(self.loss_sum) / n,
            "per_class_acc": per_class,
            "confusion": self.confusion.tolist(),
            "count": self.count,
        }
