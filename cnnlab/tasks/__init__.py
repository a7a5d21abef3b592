"""Tasks own the loss and the metrics; the trainer knows only this protocol:

    training_step(model, batch) -> dict with "loss" (and optional "logits", "targets")
    validation_step(model, batch) -> dict
    metrics() -> evaluator with update(...) and compute()
    predict(model, images) -> task-specific predictions
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class Task(Protocol):
    name: str

    def training_step(self, model: torch.nn.Module, batch: Any) -> dict[str, torch.Tensor]: ...

    def validation_step(self, model: torch.nn.Module, batch: Any) -> dict[str, torch.Tensor]: ...

    def metrics(self) -> Any: ...
