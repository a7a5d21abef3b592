"""Image classification: softmax cross-entropy (optionally label-smoothed), top-1/top-5 accuracy.

Models with auxiliary classifiers (GoogLeNet) return ``(logits, [aux, ...])`` in training; their
losses are added with the model's ``aux_loss_weight`` (0.3 in the paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnlab.metrics.classification import ClassificationMetrics


class ClassificationTask:
    name = "classify"

    def __init__(self, num_classes: int, label_smoothing: float = 0.0, tta: str = "none"):
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.tta = tta

    def training_step(self, model: torch.nn.Module, batch) -> dict[str, torch.Tensor]:
        x, y = batch  # (B, C, H, W), (B,)
        out = model(x)
        aux: list[torch.Tensor] = []
        if isinstance(out, tuple):
            out, aux = out
        loss = F.cross_entropy(out, y, label_smoothing=self.label_smoothing)
        if aux:
            weight = getattr(_unwrap(model), "aux_loss_weight", 0.3)
            loss = loss + weight * sum(F.cross_entropy(a, y, label_smoothing=self.label_smoothing) for a in aux)
        return {"loss": loss, "logits": out.detach(), "targets": y}

    @torch.no_grad()
    def validation_step(self, model: torch.nn.Module, batch) -> dict[str, torch.Tensor]:
        x, y = batch
        logits = self.logits(model, x)
        loss_sum = F.cross_entropy(logits, y, reduction="sum")
        return {"loss_sum": loss_sum, "logits": logits, "targets": y}

    @torch.no_grad()
    def logits(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode logits, averaged over horizontal flips with tta='flip' (in log-probability space)."""
        out = model(x)
        if self.tta == "flip":
            out = torch.stack([out.log_softmax(1), model(x.flip(3)).log_softmax(1)]).mean(0)
        return out

    def metrics(self) -> ClassificationMetrics:
        return ClassificationMetrics(self.num_classes)

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, x: torch.Tensor, topk: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k (probabilities, class indices) per image."""
        probs = self.logits(model, x).softmax(1)
        return probs.topk(min(topk, probs.shape[1]), dim=1)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    from cnnlab.engine.checkpoint import unwrap_model

    return unwrap_model(model)
