"""The course's Solver: mini-batch training of a scratch model with any update rule.

A model has ``params`` (name -> array) and ``loss(X, y=None)`` returning scores, or
(loss, grads) when labels are given. Each epoch the Solver measures train and validation
accuracy, keeps a copy of the parameters with the best validation accuracy, and at the end
puts those best parameters back into the model.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from cnnlab.errors import ConfigError, TrainingError
from cnnlab.scratch.optim import get_update_rule


class Solver:
    """Train ``model`` on ``data`` (X_train, y_train, X_val, y_val).

    progress(iteration, num_iterations, loss), when given, is called after every update
    (the CLI drives a tqdm bar with it; the library itself prints nothing).
    """

    def __init__(self, model, data: dict, update_rule: str = "sgd", optim_config: dict | None = None,
                 lr_decay: float = 1.0, batch_size: int = 100, num_epochs: int = 10,
                 num_train_samples: int | None = 1000, num_val_samples: int | None = None, seed: int = 0,
                 progress: Callable[[int, int, float], None] | None = None):
        missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in data]
        if missing:
            raise ConfigError(f"solver: data is missing {', '.join(missing)}")
        if batch_size < 1 or num_epochs < 1:
            raise ConfigError(f"solver: batch_size and num_epochs must be >= 1, got {batch_size} and {num_epochs}")
        self.model, self.data = model, data
        self.update = get_update_rule(update_rule)
        self.optim_config = dict(optim_config or {})
        self.lr_decay, self.batch_size, self.num_epochs = lr_decay, batch_size, num_epochs
        self.num_train_samples, self.num_val_samples = num_train_samples, num_val_samples
        self.rng = np.random.default_rng(seed)
        self.progress = progress
        self.configs = {name: dict(self.optim_config) for name in model.params}  # per-parameter state
        self.epoch = 0
        self.best_val_acc = -1.0
        self.best_params: dict = {}
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []

    def _step(self) -> float:
        n = self.data["X_train"].shape[0]
        idx = self.rng.choice(n, min(self.batch_size, n), replace=False)
        loss, grads = self.model.loss(self.data["X_train"][idx], self.data["y_train"][idx])
        if not np.isfinite(loss):
            raise TrainingError(f"loss became {loss} at epoch {self.epoch}; lower the learning rate")
        for name, w in self.model.params.items():
            self.model.params[name], self.configs[name] = self.update(w, grads[name], self.configs[name])
        return float(loss)

    def check_accuracy(self, X: np.ndarray, y: np.ndarray, num_samples: int | None = None, batch_size: int = 500) -> float:
        """Accuracy of the model on (X, y), on a random subset of num_samples if given."""
        if num_samples is not None and X.shape[0] > num_samples:
            idx = self.rng.choice(X.shape[0], num_samples, replace=False)
            X, y = X[idx], y[idx]
        preds = [np.argmax(self.model.loss(X[i : i + batch_size]), axis=1) for i in range(0, X.shape[0], batch_size)]
        return float(np.mean(np.concatenate(preds) == y)) if len(y) else 0.0

    def _record_epoch(self) -> None:
        train_acc = self.check_accuracy(self.data["X_train"], self.data["y_train"], self.num_train_samples)
        val_acc = self.check_accuracy(self.data["X_val"], self.data["y_val"], self.num_val_samples)
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        if val_acc > self.best_val_acc:
            self.best_val_acc = val_acc
            self.best_params = {k: v.copy() for k, v in self.model.params.items()}

    def train(self) -> "Solver":
        n = self.data["X_train"].shape[0]
        per_epoch = max(n // self.batch_size, 1)
        total = per_epoch * self.num_epochs
        for it in range(total):
            self.loss_history.append(self._step())
            if self.progress is not None:
                self.progress(it + 1, total, self.loss_history[-1])
            if (it + 1) % per_epoch == 0:  # end of an epoch: decay the rate, measure, keep the best
                self.epoch += 1
                for cfg in self.configs.values():
                    if "learning_rate" in cfg:
                        cfg["learning_rate"] *= self.lr_decay
                self._record_epoch()
        self.model.params.update(self.best_params)
        return self
